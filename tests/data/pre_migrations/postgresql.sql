--
-- PostgreSQL database dump
--

\restrict DFjgt01nmcDiCqEhqL47JmXkb8pTuBSD3aecBtY336X5U8YRIMhCK4Da0aaRORl

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: apitoken; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.apitoken (
    id integer NOT NULL,
    name character varying(128) NOT NULL,
    role character varying(16) NOT NULL,
    token_sha256 character varying(64) NOT NULL,
    prefix character varying(16) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone
);


--
-- Name: apitoken_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.apitoken_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: apitoken_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.apitoken_id_seq OWNED BY public.apitoken.id;


--
-- Name: deployment; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.deployment (
    id integer NOT NULL,
    model_version_id integer NOT NULL,
    fleet character varying(128) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    rollout_id integer,
    remove boolean NOT NULL,
    priority character varying(16)
);


--
-- Name: deployment_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.deployment_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: deployment_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.deployment_id_seq OWNED BY public.deployment.id;


--
-- Name: deploymenttarget; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.deploymenttarget (
    id integer NOT NULL,
    deployment_id integer NOT NULL,
    device_id character varying(128) NOT NULL,
    generation bigint NOT NULL,
    status character varying NOT NULL,
    reason character varying,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: deploymenttarget_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.deploymenttarget_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: deploymenttarget_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.deploymenttarget_id_seq OWNED BY public.deploymenttarget.id;


--
-- Name: device; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.device (
    id character varying(128) NOT NULL,
    fleet character varying(128) NOT NULL,
    online boolean NOT NULL,
    status character varying NOT NULL,
    agent_version character varying,
    active_model character varying,
    active_version character varying,
    active_bundle_digest character varying,
    backend character varying,
    generation bigint NOT NULL,
    reported_generation bigint NOT NULL,
    last_error character varying,
    local_api character varying,
    hardware json NOT NULL,
    last_report_at timestamp with time zone,
    last_seen_at timestamp with time zone,
    last_heartbeat json,
    last_heartbeat_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    pinned_backend character varying(128),
    model_pins json NOT NULL,
    selections json NOT NULL,
    labels json NOT NULL,
    profile character varying(128),
    runtimes json NOT NULL,
    key_id character varying(64),
    report_windows json NOT NULL,
    models json NOT NULL,
    memory json
);


--
-- Name: devicecommand; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.devicecommand (
    device_id character varying(128) NOT NULL,
    generation bigint NOT NULL,
    deployment_id integer NOT NULL,
    trust_version bigint NOT NULL,
    key_id character varying(64) NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    signed_at timestamp with time zone NOT NULL,
    envelope bytea NOT NULL,
    backend character varying(128)
);


--
-- Name: deviceidentity; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.deviceidentity (
    device_id character varying(128) NOT NULL,
    key_id character varying(64) NOT NULL,
    public_key_pem text NOT NULL,
    report_key character varying(64),
    cert_serial character varying(64) NOT NULL,
    cert_not_after timestamp with time zone NOT NULL,
    enrolled_at timestamp with time zone NOT NULL,
    renewed_at timestamp with time zone,
    revoked_at timestamp with time zone
);


--
-- Name: enrollmenttoken; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.enrollmenttoken (
    id integer NOT NULL,
    device_id character varying(128) NOT NULL,
    fleet character varying(128) NOT NULL,
    token_sha256 character varying(64) NOT NULL,
    created_by character varying(128),
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone
);


--
-- Name: enrollmenttoken_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.enrollmenttoken_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: enrollmenttoken_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.enrollmenttoken_id_seq OWNED BY public.enrollmenttoken.id;


--
-- Name: fleet; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.fleet (
    name character varying(128) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    pinned_backend character varying(128),
    model_pins json NOT NULL
);


--
-- Name: heartbeatsample; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.heartbeatsample (
    id bigint NOT NULL,
    device_id character varying(128) NOT NULL,
    model character varying(128) NOT NULL,
    version character varying(128) NOT NULL,
    backend character varying(256) NOT NULL,
    at timestamp with time zone NOT NULL,
    resolution_s integer NOT NULL,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    p50_ms double precision,
    p95_ms double precision
);


--
-- Name: heartbeatsample_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.heartbeatsample_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: heartbeatsample_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.heartbeatsample_id_seq OWNED BY public.heartbeatsample.id;


--
-- Name: issuedcertificate; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.issuedcertificate (
    serial character varying(64) NOT NULL,
    device_id character varying(128) NOT NULL,
    issued_at timestamp with time zone NOT NULL,
    not_after timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);


--
-- Name: lease; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.lease (
    name character varying(64) NOT NULL,
    holder character varying(256) NOT NULL,
    epoch integer NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: model; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.model (
    name character varying(128) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: modelvariant; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.modelvariant (
    id integer NOT NULL,
    model_version_id integer NOT NULL,
    variant character varying(64) NOT NULL,
    bundle_digest character varying(64) NOT NULL,
    signature_sha256 character varying(64) NOT NULL,
    signature_size integer NOT NULL,
    files json NOT NULL,
    bundle_metadata json NOT NULL,
    key_id character varying,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: modelvariant_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.modelvariant_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: modelvariant_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.modelvariant_id_seq OWNED BY public.modelvariant.id;


--
-- Name: modelversion; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.modelversion (
    id integer NOT NULL,
    model character varying(128) NOT NULL,
    version character varying(128) NOT NULL,
    bundle_digest character varying(64) NOT NULL,
    signature_sha256 character varying(64) NOT NULL,
    signature_size integer NOT NULL,
    files json NOT NULL,
    bundle_metadata json NOT NULL,
    key_id character varying,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: modelversion_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.modelversion_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: modelversion_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.modelversion_id_seq OWNED BY public.modelversion.id;


--
-- Name: rollout; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rollout (
    id integer NOT NULL,
    model character varying(128) NOT NULL,
    version character varying(128) NOT NULL,
    model_version_id integer NOT NULL,
    fleet character varying(128) NOT NULL,
    selector json NOT NULL,
    strategy json NOT NULL,
    state character varying(16) NOT NULL,
    reason character varying,
    deployment_id integer,
    current_batch integer NOT NULL,
    batch_started_at timestamp with time zone,
    batch_done_at timestamp with time zone,
    previous_version character varying(128),
    remove boolean NOT NULL,
    priority character varying(16),
    rollback_of integer,
    history json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: rollout_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.rollout_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: rollout_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.rollout_id_seq OWNED BY public.rollout.id;


--
-- Name: rolloutdevice; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rolloutdevice (
    id integer NOT NULL,
    rollout_id integer NOT NULL,
    device_id character varying(128) NOT NULL,
    batch integer NOT NULL,
    status character varying(16) NOT NULL,
    reason character varying,
    previous_model_version_id integer,
    target_model_version_id integer,
    baseline json,
    observed json,
    started_at timestamp with time zone,
    activated_at timestamp with time zone,
    judged_at timestamp with time zone,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: rolloutdevice_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.rolloutdevice_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: rolloutdevice_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.rolloutdevice_id_seq OWNED BY public.rolloutdevice.id;


--
-- Name: trustversion; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.trustversion (
    version bigint NOT NULL,
    envelope bytea NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: apitoken id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.apitoken ALTER COLUMN id SET DEFAULT nextval('public.apitoken_id_seq'::regclass);


--
-- Name: deployment id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deployment ALTER COLUMN id SET DEFAULT nextval('public.deployment_id_seq'::regclass);


--
-- Name: deploymenttarget id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deploymenttarget ALTER COLUMN id SET DEFAULT nextval('public.deploymenttarget_id_seq'::regclass);


--
-- Name: enrollmenttoken id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.enrollmenttoken ALTER COLUMN id SET DEFAULT nextval('public.enrollmenttoken_id_seq'::regclass);


--
-- Name: heartbeatsample id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.heartbeatsample ALTER COLUMN id SET DEFAULT nextval('public.heartbeatsample_id_seq'::regclass);


--
-- Name: modelvariant id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelvariant ALTER COLUMN id SET DEFAULT nextval('public.modelvariant_id_seq'::regclass);


--
-- Name: modelversion id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelversion ALTER COLUMN id SET DEFAULT nextval('public.modelversion_id_seq'::regclass);


--
-- Name: rollout id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout ALTER COLUMN id SET DEFAULT nextval('public.rollout_id_seq'::regclass);


--
-- Name: rolloutdevice id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rolloutdevice ALTER COLUMN id SET DEFAULT nextval('public.rolloutdevice_id_seq'::regclass);


--
-- Data for Name: apitoken; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.apitoken VALUES (1, 'bootstrap', 'admin', 'b4869d2727471366cb6f3edbfb3e9e8260e7935b4204f52f635baf2e0bd175e5', 'efk_tests-ad', '2026-12-06 06:36:22.926542+00', '2026-12-06 06:36:23.163001+00', NULL);
INSERT INTO public.apitoken VALUES (2, 'ops', 'operator', 'a271335e06ccf276305d767cdc785d94648561413da2262b710269fe62bddf2b', 'efk_3mHJNztT', '2026-12-06 06:36:23.505225+00', NULL, NULL);
INSERT INTO public.apitoken VALUES (3, 'watch', 'viewer', '6996a7e11e91223954a0d9159f2368cdf241e6ed1488fce853a40fce6ff7c20b', 'efk_0zw4d7_i', '2026-12-06 06:36:23.516248+00', NULL, NULL);
INSERT INTO public.apitoken VALUES (4, 'gone', 'viewer', '567c19e7b1143975532692250e922774e236430eac246d1a2f6d19e33cc36e9f', 'efk_EI48p-zz', '2026-12-06 06:36:23.567182+00', NULL, '2026-12-06 06:36:23.668418+00');


--
-- Data for Name: deployment; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.deployment VALUES (1, 1, 'f', '2026-12-06 06:36:23.168507+00', NULL, false, NULL);
INSERT INTO public.deployment VALUES (2, 2, 'f', '2026-12-06 06:36:23.382569+00', 1, false, NULL);


--
-- Data for Name: deploymenttarget; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.deploymenttarget VALUES (1, 1, 'd00', 1, 'activated', NULL, '2026-12-06 06:36:23.237034+00');
INSERT INTO public.deploymenttarget VALUES (2, 1, 'd01', 1, 'activated', NULL, '2026-12-06 06:36:23.268605+00');
INSERT INTO public.deploymenttarget VALUES (3, 1, 'd02', 1, 'activated', NULL, '2026-12-06 06:36:23.294393+00');
INSERT INTO public.deploymenttarget VALUES (4, 1, 'd03', 1, 'activated', NULL, '2026-12-06 06:36:23.321044+00');
INSERT INTO public.deploymenttarget VALUES (5, 2, 'd00', 2, 'activated', NULL, '2026-12-06 06:36:23.459479+00');


--
-- Data for Name: device; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.device VALUES ('s00', 'store-eu', true, 'idle', 'test', NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, '{}', '2026-12-06 06:36:23.336717+00', '2026-12-06 06:36:23.363469+00', '{"at": "2026-12-06T06:36:23.361738Z", "cpu_percent": 5.0, "rss_bytes": 1, "mem_total_bytes": 2, "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0.1, 0.1, 0.1], "uptime_s": 10.0, "disk": null, "temperatures": [], "models": [{"name": "det", "version": "1.0.0", "backend": "onnxruntime:cpu:fp32", "requests": 7, "errors": 1, "client_errors": 0, "errors_by_kind": {}, "p50_ms": 2.0, "p95_ms": 4.0, "p99_ms": 4.8}], "spool_pending": 0, "spool_dropped": 0, "spool_acked": 0, "spool_lost": 0}', '2026-12-06 06:36:23.361738+00', '2026-12-06 06:36:23.345648+00', NULL, '{}', '{}', '{}', NULL, '[]', '8cc9f2525748cd5b78fab8e3eb3b2d0066731fd7ebbe2daccecfa2df84f6c770', '{"state": [1, 1], "heartbeat": [2, 2]}', '[]', 'null');
INSERT INTO public.device VALUES ('d02', 'f', true, 'idle', 'test', 'det', '1.0.0', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'onnxruntime:cpu:fp32', 1, 1, NULL, NULL, '{}', '2026-12-06 06:36:23.296559+00', '2026-12-06 06:36:23.309297+00', '{"at": "2026-12-06T06:36:23.307075Z", "cpu_percent": 5.0, "rss_bytes": 1, "mem_total_bytes": 2, "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0.1, 0.1, 0.1], "uptime_s": 10.0, "disk": null, "temperatures": [], "models": [{"name": "det", "version": "1.0.0", "backend": "onnxruntime:cpu:fp32", "requests": 500, "errors": 0, "client_errors": 0, "errors_by_kind": {}, "p50_ms": 5.0, "p95_ms": 10.0, "p99_ms": 12.0}], "spool_pending": 0, "spool_dropped": 0, "spool_acked": 0, "spool_lost": 0}', '2026-12-06 06:36:23.307075+00', '2026-12-06 06:36:23.103528+00', NULL, '{}', '{}', '{}', NULL, '[]', 'ffe31043ef7746d35139aa91f92a85407cc123b17e03b555ecf20433d7cb8cfa', '{"state": [4, 12], "events": [3, 5], "heartbeat": [5, 16]}', '[{"name": "det", "version": "1.0.0", "bundle_digest": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "backend": "onnxruntime:cpu:fp32", "deployment_id": null, "memory_bytes": null, "priority": null, "threads": null, "concurrency": null, "state": "active", "reason": null}]', 'null');
INSERT INTO public.device VALUES ('d03', 'f', true, 'idle', 'test', 'det', '1.0.0', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'onnxruntime:cpu:fp32', 1, 1, NULL, NULL, '{}', '2026-12-06 06:36:23.32317+00', '2026-12-06 06:36:23.334567+00', '{"at": "2026-12-06T06:36:23.332589Z", "cpu_percent": 5.0, "rss_bytes": 1, "mem_total_bytes": 2, "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0.1, 0.1, 0.1], "uptime_s": 10.0, "disk": null, "temperatures": [], "models": [{"name": "det", "version": "1.0.0", "backend": "onnxruntime:cpu:fp32", "requests": 500, "errors": 0, "client_errors": 0, "errors_by_kind": {}, "p50_ms": 5.0, "p95_ms": 10.0, "p99_ms": 12.0}], "spool_pending": 0, "spool_dropped": 0, "spool_acked": 0, "spool_lost": 0}', '2026-12-06 06:36:23.332589+00', '2026-12-06 06:36:23.128745+00', NULL, '{}', '{}', '{}', NULL, '[]', 'db85763139a0b287e71104577dbd9ff90b15666bd0e4f3063d6ae1a43831fb16', '{"state": [4, 12], "events": [3, 5], "heartbeat": [5, 16]}', '[{"name": "det", "version": "1.0.0", "bundle_digest": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "backend": "onnxruntime:cpu:fp32", "deployment_id": null, "memory_bytes": null, "priority": null, "threads": null, "concurrency": null, "state": "active", "reason": null}]', 'null');
INSERT INTO public.device VALUES ('d01', 'f', true, 'idle', 'test', 'det', '1.0.0', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'onnxruntime:cpu:fp32', 1, 1, NULL, NULL, '{}', '2026-12-06 06:36:23.270584+00', '2026-12-06 06:36:23.281542+00', '{"at": "2026-12-06T06:36:23.279930Z", "cpu_percent": 5.0, "rss_bytes": 1, "mem_total_bytes": 2, "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0.1, 0.1, 0.1], "uptime_s": 10.0, "disk": null, "temperatures": [], "models": [{"name": "det", "version": "1.0.0", "backend": "onnxruntime:cpu:fp32", "requests": 500, "errors": 0, "client_errors": 0, "errors_by_kind": {}, "p50_ms": 5.0, "p95_ms": 10.0, "p99_ms": 12.0}], "spool_pending": 0, "spool_dropped": 0, "spool_acked": 0, "spool_lost": 0}', '2026-12-06 06:36:23.27993+00', '2026-12-06 06:36:23.081141+00', NULL, '{}', '{}', '{}', NULL, '[]', 'c824284bea7ac79f406047ad6ca9861e0b61c3cd495444daec4ed30639c228e8', '{"state": [4, 12], "events": [3, 5], "heartbeat": [5, 16]}', '[{"name": "det", "version": "1.0.0", "bundle_digest": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "backend": "onnxruntime:cpu:fp32", "deployment_id": null, "memory_bytes": null, "priority": null, "threads": null, "concurrency": null, "state": "active", "reason": null}]', 'null');
INSERT INTO public.device VALUES ('d00', 'f', true, 'idle', 'test', 'det', '2.0.0', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'onnxruntime:cpu:fp32', 2, 2, NULL, NULL, '{}', '2026-12-06 06:36:23.46179+00', '2026-12-06 06:36:23.470847+00', '{"at": "2026-12-06T06:36:23.469479Z", "cpu_percent": 5.0, "rss_bytes": 1, "mem_total_bytes": 2, "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0.1, 0.1, 0.1], "uptime_s": 10.0, "disk": null, "temperatures": [], "models": [{"name": "det", "version": "1.0.0", "backend": "onnxruntime:cpu:fp32", "requests": 500, "errors": 0, "client_errors": 0, "errors_by_kind": {}, "p50_ms": 5.0, "p95_ms": 10.0, "p99_ms": 12.0}, {"name": "det", "version": "2.0.0", "backend": "onnxruntime:cpu:fp32", "requests": 100, "errors": 0, "client_errors": 0, "errors_by_kind": {}, "p50_ms": 5.25, "p95_ms": 10.5, "p99_ms": 12.6}], "spool_pending": 0, "spool_dropped": 0, "spool_acked": 0, "spool_lost": 0}', '2026-12-06 06:36:23.469479+00', '2026-12-06 06:36:23.045552+00', NULL, '{}', '{}', '{}', NULL, '[]', 'fcf9cd4382609f33922bb611a7664b9d3ca13d4452d937fe15f1560facc218f7', '{"state": [8, 200], "events": [7, 89], "heartbeat": [9, 264]}', '[{"name": "det", "version": "2.0.0", "bundle_digest": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "backend": "onnxruntime:cpu:fp32", "deployment_id": null, "memory_bytes": null, "priority": null, "threads": null, "concurrency": null, "state": "active", "reason": null}]', 'null');


--
-- Data for Name: devicecommand; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.devicecommand VALUES ('d01', 1, 1, 1, 'eabf6b9658f153ccaae7912023d31e2453505e04821213fb58ebc055b9872934', '2026-12-13 06:36:23.187589+00', '2026-12-06 06:36:23.187589+00', '\x7b227061796c6f616454797065223a226170706c69636174696f6e2f766e642e65646765666c6565742e646573697265642d73746174652e76312b6a736f6e222c227061796c6f6164223a2265794a77636d393062324e76624639325a584a7a61573975496a6f784c434a6b5a585a7059325666615751694f694a6b4d4445694c434a6e5a57356c636d463061573975496a6f784c434a7063334e315a575266595851694f6949794d4449324c5445794c544132564441324f6a4d324f6a497a4c6a45344e7a55344f566f694c434a6c65484270636d567a58324630496a6f694d6a41794e6930784d6930784d3151774e6a6f7a4e6a6f794d7934784f4463314f446c614969776964484a3163335266646d567963326c76626949364d5377696257396b5a57787a496a706265794a6b5a58427362336c745a57353058326c6b496a6f784c434a755957316c496a6f695a47563049697769646d567963326c7662694936496a45754d43347749697769596e56755a47786c583252705a32567a64434936496d46685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595745694c434a7a6158706c496a6f7a4d43776963326c6e626d463064584a6c496a7037496e4268644767694f694a746232526c6243357a615763694c434a7a614745794e5459694f694a6a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b4969776963326c365a5349364d544173496e567962434936626e567362483073496d5a706247567a496a706265794a775958526f496a6f696257396b5a5777756232357565434973496e4e6f595449314e694936496d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a5759694c434a7a6158706c496a6f794d43776964584a73496a70756457787366563073496d4a685932746c626d51694f6d353162477773496e42796157397961585235496a70756457787366563139222c227369676e617475726573223a5b7b226b65796964223a2265616266366239363538663135336363616165373931323032336433316532343533353035653034383231323133666235386562633035356239383732393334222c22736967223a224d4559434951445a69344a4e2f504e3666466b5670576c37666f7177474d6f53387458526a32347a363355343936424849674968414a384b6967726d71546a58356d424266327352325a7555365a4546496f573970313754457a615a2f317966227d5d7d', NULL);
INSERT INTO public.devicecommand VALUES ('d02', 1, 1, 1, 'eabf6b9658f153ccaae7912023d31e2453505e04821213fb58ebc055b9872934', '2026-12-13 06:36:23.187589+00', '2026-12-06 06:36:23.187589+00', '\x7b227061796c6f616454797065223a226170706c69636174696f6e2f766e642e65646765666c6565742e646573697265642d73746174652e76312b6a736f6e222c227061796c6f6164223a2265794a77636d393062324e76624639325a584a7a61573975496a6f784c434a6b5a585a7059325666615751694f694a6b4d4449694c434a6e5a57356c636d463061573975496a6f784c434a7063334e315a575266595851694f6949794d4449324c5445794c544132564441324f6a4d324f6a497a4c6a45344e7a55344f566f694c434a6c65484270636d567a58324630496a6f694d6a41794e6930784d6930784d3151774e6a6f7a4e6a6f794d7934784f4463314f446c614969776964484a3163335266646d567963326c76626949364d5377696257396b5a57787a496a706265794a6b5a58427362336c745a57353058326c6b496a6f784c434a755957316c496a6f695a47563049697769646d567963326c7662694936496a45754d43347749697769596e56755a47786c583252705a32567a64434936496d46685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595745694c434a7a6158706c496a6f7a4d43776963326c6e626d463064584a6c496a7037496e4268644767694f694a746232526c6243357a615763694c434a7a614745794e5459694f694a6a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b4969776963326c365a5349364d544173496e567962434936626e567362483073496d5a706247567a496a706265794a775958526f496a6f696257396b5a5777756232357565434973496e4e6f595449314e694936496d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a5759694c434a7a6158706c496a6f794d43776964584a73496a70756457787366563073496d4a685932746c626d51694f6d353162477773496e42796157397961585235496a70756457787366563139222c227369676e617475726573223a5b7b226b65796964223a2265616266366239363538663135336363616165373931323032336433316532343533353035653034383231323133666235386562633035356239383732393334222c22736967223a224d45514349416f572f64766c44676a4d706e4a6a735678456f634a666f6c4c3541474d427076367a6b4b4d674b504777416942693031622b4a314f68536e4d466a4359775356523558366f43585a30597445304963494c4e4278566952673d3d227d5d7d', NULL);
INSERT INTO public.devicecommand VALUES ('d03', 1, 1, 1, 'eabf6b9658f153ccaae7912023d31e2453505e04821213fb58ebc055b9872934', '2026-12-13 06:36:23.187589+00', '2026-12-06 06:36:23.187589+00', '\x7b227061796c6f616454797065223a226170706c69636174696f6e2f766e642e65646765666c6565742e646573697265642d73746174652e76312b6a736f6e222c227061796c6f6164223a2265794a77636d393062324e76624639325a584a7a61573975496a6f784c434a6b5a585a7059325666615751694f694a6b4d444d694c434a6e5a57356c636d463061573975496a6f784c434a7063334e315a575266595851694f6949794d4449324c5445794c544132564441324f6a4d324f6a497a4c6a45344e7a55344f566f694c434a6c65484270636d567a58324630496a6f694d6a41794e6930784d6930784d3151774e6a6f7a4e6a6f794d7934784f4463314f446c614969776964484a3163335266646d567963326c76626949364d5377696257396b5a57787a496a706265794a6b5a58427362336c745a57353058326c6b496a6f784c434a755957316c496a6f695a47563049697769646d567963326c7662694936496a45754d43347749697769596e56755a47786c583252705a32567a64434936496d46685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595746685957466859574668595745694c434a7a6158706c496a6f7a4d43776963326c6e626d463064584a6c496a7037496e4268644767694f694a746232526c6243357a615763694c434a7a614745794e5459694f694a6a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b4969776963326c365a5349364d544173496e567962434936626e567362483073496d5a706247567a496a706265794a775958526f496a6f696257396b5a5777756232357565434973496e4e6f595449314e694936496d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a5759694c434a7a6158706c496a6f794d43776964584a73496a70756457787366563073496d4a685932746c626d51694f6d353162477773496e42796157397961585235496a70756457787366563139222c227369676e617475726573223a5b7b226b65796964223a2265616266366239363538663135336363616165373931323032336433316532343533353035653034383231323133666235386562633035356239383732393334222c22736967223a224d4555434948506e3939532f7a4c686b7464664338514e793647416c783635506a727a7038333738394f4b5474444370416945416f6859563848787634784e614a485a6b706b4f664247667974586a4c6f657075496a4752446e33787468383d227d5d7d', NULL);
INSERT INTO public.devicecommand VALUES ('d00', 2, 2, 1, 'eabf6b9658f153ccaae7912023d31e2453505e04821213fb58ebc055b9872934', '2026-12-13 06:36:23.412808+00', '2026-12-06 06:36:23.412808+00', '\x7b227061796c6f616454797065223a226170706c69636174696f6e2f766e642e65646765666c6565742e646573697265642d73746174652e76312b6a736f6e222c227061796c6f6164223a2265794a77636d393062324e76624639325a584a7a61573975496a6f784c434a6b5a585a7059325666615751694f694a6b4d4441694c434a6e5a57356c636d463061573975496a6f794c434a7063334e315a575266595851694f6949794d4449324c5445794c544132564441324f6a4d324f6a497a4c6a51784d6a67774f466f694c434a6c65484270636d567a58324630496a6f694d6a41794e6930784d6930784d3151774e6a6f7a4e6a6f794d7934304d5449344d4468614969776964484a3163335266646d567963326c76626949364d5377696257396b5a57787a496a706265794a6b5a58427362336c745a57353058326c6b496a6f794c434a755957316c496a6f695a47563049697769646d567963326c7662694936496a49754d43347749697769596e56755a47786c583252705a32567a64434936496d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d4a69596d49694c434a7a6158706c496a6f7a4d43776963326c6e626d463064584a6c496a7037496e4268644767694f694a746232526c6243357a615763694c434a7a614745794e5459694f694a6a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b5932526a5a474e6b4969776963326c365a5349364d544173496e567962434936626e567362483073496d5a706247567a496a706265794a775958526f496a6f696257396b5a5777756232357565434973496e4e6f595449314e694936496d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a575a6c5a6d566d5a5759694c434a7a6158706c496a6f794d43776964584a73496a70756457787366563073496d4a685932746c626d51694f6d353162477773496e42796157397961585235496a70756457787366563139222c227369676e617475726573223a5b7b226b65796964223a2265616266366239363538663135336363616165373931323032336433316532343533353035653034383231323133666235386562633035356239383732393334222c22736967223a224d455543495144334835767a30434244724b4b684b573071346e3151726e64696977582b6d5257594a47394c6457575374774967432b42424f35556a2f4151527072744a72343155374b4c57657a5452524e444d6f415073454f726847384d3d227d5d7d', NULL);


--
-- Data for Name: deviceidentity; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.deviceidentity VALUES ('d00', 'fcf9cd4382609f33922bb611a7664b9d3ca13d4452d937fe15f1560facc218f7', '-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1KKacXhCQAoyEEiuf61W9xfzRNoe
6IswxSeHIuyXkaklVHSXJzOGAFe/pNwM8bcjk8PXOXDbISNS58OZiEXC8Q==
-----END PUBLIC KEY-----
', '1530efedc4aa9bda92698870a4db549bb4514b02edc392dcf1b067e0460b1cd8', '70ba7f250c08b69ddcc2764bbf1359b436665130', '2026-12-13 06:36:23+00', '2026-12-06 06:36:23.033974+00', NULL, NULL);
INSERT INTO public.deviceidentity VALUES ('d01', 'c824284bea7ac79f406047ad6ca9861e0b61c3cd495444daec4ed30639c228e8', '-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEOHfKdpQEHmVe9Xl01Xd1FjrzXMLB
CpPX44ki1IUyQ6+Og4ICw68jJ7oZf78H4B2oa5qAQNzJdNO3uhYG0nhs3A==
-----END PUBLIC KEY-----
', 'e109ee07da7eb1a8e914a0b702fbc4f353a1f739584960bd6c078eaed482d5d8', '1ebf5c93ca2a6af28a77ba44c0c3b5f5b1d2fc09', '2026-12-13 06:36:23+00', '2026-12-06 06:36:23.078606+00', NULL, NULL);
INSERT INTO public.deviceidentity VALUES ('d02', 'ffe31043ef7746d35139aa91f92a85407cc123b17e03b555ecf20433d7cb8cfa', '-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzf1pTmCzkw00G9rca5Pg6wadI/oP
osPVFSgMo/pA+SK6tGgkvNSpiTozAsT2fQ6uxWXoTw8WVvCb3dXPmg7RGw==
-----END PUBLIC KEY-----
', 'ed68f5e491389a773f050c38ae4fa9d8c1fb052f631d29f22333197781e40919', '79c9d8c891c506e1bc1f0ce40e3fe83e64ba49b8', '2026-12-13 06:36:23+00', '2026-12-06 06:36:23.100967+00', NULL, NULL);
INSERT INTO public.deviceidentity VALUES ('d03', 'db85763139a0b287e71104577dbd9ff90b15666bd0e4f3063d6ae1a43831fb16', '-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4OoL2Ay+ROfbD5oAv0aHOYMPju8U
093zgLBPvtjfLVpMLZ+BFMVtP5GMhCu/F6yfGbXpTcI8PoxIKF37itfojw==
-----END PUBLIC KEY-----
', '366689db2021f248cf9d5d952045466adbef6a32b5042c4ae02d9f4ea31dfcac', '4635d19fd17c9599cb0e8c8b1d0ffc1966182b3b', '2026-12-13 06:36:23+00', '2026-12-06 06:36:23.12605+00', NULL, NULL);
INSERT INTO public.deviceidentity VALUES ('s00', '8cc9f2525748cd5b78fab8e3eb3b2d0066731fd7ebbe2daccecfa2df84f6c770', '-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE77u7fazfvwOMvBCXmIAbypTcLFF8
cx3aoyB2eiRNHBcV9rUUZgoNsbsTOVLMm789qm3zQON7xiRdunRixoIb7Q==
-----END PUBLIC KEY-----
', '2c0c02d7ef98fcccdf6f011ae53112e42f3cbbb5238348047ef31c6116b50d5c', '6106d74a70a78c0526807c2455958b9fc8e30cb7', '2026-12-13 06:36:23+00', '2026-12-06 06:36:23.341062+00', NULL, NULL);


--
-- Data for Name: enrollmenttoken; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.enrollmenttoken VALUES (1, 'd00', 'f', '1dfa13d0f766b1bec75adca29795ec9114c6c3ba383cca72cf985a57b92de065', 't', '2026-12-06 06:36:23.026072+00', '2026-12-06 07:36:23.025861+00', '2026-12-06 06:36:23.033974+00');
INSERT INTO public.enrollmenttoken VALUES (2, 'd01', 'f', '44276e041fccd128e5a3d2b274e4ee0da6187f4beafe7b37d4501d8be496d9a9', 't', '2026-12-06 06:36:23.075123+00', '2026-12-06 07:36:23.074967+00', '2026-12-06 06:36:23.078606+00');
INSERT INTO public.enrollmenttoken VALUES (3, 'd02', 'f', '8ffc8ae2ea8abb7d634a23634567ac62669916a387339d4adf7c64e9657f6244', 't', '2026-12-06 06:36:23.097804+00', '2026-12-06 07:36:23.09766+00', '2026-12-06 06:36:23.100967+00');
INSERT INTO public.enrollmenttoken VALUES (4, 'd03', 'f', 'f3a6f7c27b5768d48bfb052ecd1edaf14f193f4ee6afa122cbc4b4eb09266e48', 't', '2026-12-06 06:36:23.122642+00', '2026-12-06 07:36:23.122499+00', '2026-12-06 06:36:23.12605+00');
INSERT INTO public.enrollmenttoken VALUES (5, 's00', 'store-eu', '9cc50a3bac614a316ccc44c02d88a5d4a8320d27dcb392b75ddaf7b4d0e38098', 't', '2026-12-06 06:36:23.337397+00', '2026-12-06 07:36:23.337238+00', '2026-12-06 06:36:23.341062+00');
INSERT INTO public.enrollmenttoken VALUES (6, 'new-01', 'store-eu', '5fbeac7d7b832d4b7e3fd1062162b10c939644473c8300183eefa14d9da2dd00', 'bootstrap', '2026-12-06 06:36:23.724716+00', '2026-12-07 06:36:23.724617+00', NULL);


--
-- Data for Name: fleet; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.fleet VALUES ('f', '2026-12-06 06:36:23.037843+00', NULL, '{}');
INSERT INTO public.fleet VALUES ('store-eu', '2026-12-06 06:36:23.343087+00', NULL, '{}');


--
-- Data for Name: heartbeatsample; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.heartbeatsample VALUES (1, 'd00', 'det', '1.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.254526+00', 0, 500, 0, 5, 10);
INSERT INTO public.heartbeatsample VALUES (2, 'd01', 'det', '1.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.27993+00', 0, 500, 0, 5, 10);
INSERT INTO public.heartbeatsample VALUES (3, 'd02', 'det', '1.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.307075+00', 0, 500, 0, 5, 10);
INSERT INTO public.heartbeatsample VALUES (4, 'd03', 'det', '1.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.332589+00', 0, 500, 0, 5, 10);
INSERT INTO public.heartbeatsample VALUES (5, 's00', 'det', '1.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.361738+00', 0, 7, 1, 2, 4);
INSERT INTO public.heartbeatsample VALUES (6, 'd00', 'det', '1.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.469479+00', 0, 500, 0, 5, 10);
INSERT INTO public.heartbeatsample VALUES (7, 'd00', 'det', '2.0.0', 'onnxruntime:cpu:fp32', '2026-12-06 06:36:23.469479+00', 0, 100, 0, 5.25, 10.5);


--
-- Data for Name: issuedcertificate; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.issuedcertificate VALUES ('70ba7f250c08b69ddcc2764bbf1359b436665130', 'd00', '2026-12-06 06:36:23.05202+00', '2026-12-13 06:36:23+00', NULL);
INSERT INTO public.issuedcertificate VALUES ('1ebf5c93ca2a6af28a77ba44c0c3b5f5b1d2fc09', 'd01', '2026-12-06 06:36:23.083784+00', '2026-12-13 06:36:23+00', NULL);
INSERT INTO public.issuedcertificate VALUES ('79c9d8c891c506e1bc1f0ce40e3fe83e64ba49b8', 'd02', '2026-12-06 06:36:23.10696+00', '2026-12-13 06:36:23+00', NULL);
INSERT INTO public.issuedcertificate VALUES ('4635d19fd17c9599cb0e8c8b1d0ffc1966182b3b', 'd03', '2026-12-06 06:36:23.131653+00', '2026-12-13 06:36:23+00', NULL);
INSERT INTO public.issuedcertificate VALUES ('6106d74a70a78c0526807c2455958b9fc8e30cb7', 's00', '2026-12-06 06:36:23.348585+00', '2026-12-13 06:36:23+00', NULL);


--
-- Data for Name: lease; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.lease VALUES ('rollout-driver', 'edgefleet-cp-vm', 1, '2026-12-06 16:36:23.472555+00');


--
-- Data for Name: model; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.model VALUES ('det', '2026-12-06 06:36:22.93596+00');


--
-- Data for Name: modelvariant; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: modelversion; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.modelversion VALUES (1, 'det', '1.0.0', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 10, '[{"path": "model.onnx", "sha256": "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef", "size": 20}]', '{"name": "det", "version": "1.0.0"}', 'k', '2026-12-06 06:36:22.936183+00');
INSERT INTO public.modelversion VALUES (2, 'det', '2.0.0', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 10, '[{"path": "model.onnx", "sha256": "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef", "size": 20}]', '{"name": "det", "version": "2.0.0"}', 'k', '2026-12-06 06:36:22.946051+00');
INSERT INTO public.modelversion VALUES (3, 'det', '3.0.0', 'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc', 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 10, '[{"path": "model.onnx", "sha256": "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef", "size": 20}]', '{"name": "det", "version": "3.0.0"}', 'k', '2026-12-06 06:36:22.951927+00');


--
-- Data for Name: rollout; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rollout VALUES (1, 'det', '2.0.0', 2, 'f', '{}', '{"canary": 1, "canary_pct": null, "batches": 2, "wait_s": 0.0, "max_failures_pct": null, "min_finished": 1, "install_timeout_s": 600.0, "gate": {"latency_pct": 25.0, "latency_floor_ms": 5.0, "error_rate_pct": 1.0, "min_requests": 100, "no_traffic_timeout_s": 300.0, "action": "pause", "enabled": false}}', 'running', NULL, 2, 0, '2026-12-06 06:36:23.382569+00', '2026-12-06 06:36:23.472555+00', '1.0.0', false, NULL, NULL, '[{"at": "2026-12-06T06:36:23.382569+00:00", "event": "created", "message": "det 2.0.0 to 4 device(s) of fleet f in 3 batch(es)"}, {"at": "2026-12-06T06:36:23.382569+00:00", "event": "batch_started", "message": "canary batch (1 of 3) started: 1 device(s)", "batch": 0}, {"at": "2026-12-06T06:36:23.472555+00:00", "event": "batch_done", "message": "canary batch (1 of 3) done: 1 device(s), 0 not updated", "batch": 0}]', '2026-12-06 06:36:23.382569+00', '2026-12-06 06:36:23.472555+00');


--
-- Data for Name: rolloutdevice; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rolloutdevice VALUES (2, 1, 'd01', 1, 'pending', NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, '2026-12-06 06:36:23.382569+00');
INSERT INTO public.rolloutdevice VALUES (3, 1, 'd02', 1, 'pending', NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, '2026-12-06 06:36:23.382569+00');
INSERT INTO public.rolloutdevice VALUES (4, 1, 'd03', 2, 'pending', NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, '2026-12-06 06:36:23.382569+00');
INSERT INTO public.rolloutdevice VALUES (1, 1, 'd00', 0, 'activated', NULL, 1, NULL, '{"requests": 500, "errors": 0, "p95_ms": 10.0}', '{"requests": 100, "errors": 0, "p95_ms": 10.5}', '2026-12-06 06:36:23.382569+00', '2026-12-06 06:36:23.472555+00', NULL, '2026-12-06 06:36:23.472555+00');


--
-- Data for Name: trustversion; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.trustversion VALUES (1, '\x7b227061796c6f616454797065223a226170706c69636174696f6e2f766e642e65646765666c6565742e74727573742e76312b6a736f6e222c227061796c6f6164223a2265794a6664486c775a534936496d566b5a32566d6247566c64433930636e567a64434973496d563463476c795a584d694f6949794d4449334c5445794c544132564441324f6a4d324f6a497957694973496d746c65584d694f6e73694d325579597a49795a446b334d6d4e694e5467784d3256684e7a677a596d59344e32497a4d6d4a684f574a694e546c6d59544d7a4f4449784d324d775932597a5a444a6c597a64684f474d344e7a6c68596d4a694d534936496930744c533074516b5648535534675546564354456c4449457446575330744c5330745847354e526d74335258645a53457476576b6c36616a42445156465a53557476576b6c36616a42455156466a5246466e5155566f53546c44546b78565a3151335932644b5932524c56334270566b5648647939764b30354e584735504d6a497a5331527754316c7664327479526d464352456c6b636d5a6f616d704f52474e45633039544b314a324f556c5254546851567a4d775456466c65456c705a584d346557394a5455396e50543163626930744c5330745255354549464256516b784a5179424c52566b744c5330744c56787549697769597a59334d7a4e694e5463775957557a4d6a4179596a677a4d4441334f4445784f574d774d325a6d4d4456684d4745774d325578597a646a597a4d354e6a59325a6d59304e54526b5a6a6b354d6d4d304e5749334f534936496930744c533074516b5648535534675546564354456c4449457446575330744c5330745847354e526d74335258645a53457476576b6c36616a42445156465a53557476576b6c36616a42455156466a5246466e515555344e445272656d4a516444427353797473516a684f624456774d334e4d5a466c425530684e584735766557465163336856574842536132396c4e327378516d34324d6a5a695a6a6c314e55704b53556c435a58526964446b786343746a6247464d52336b7a626c4a6a4d6d6c4e643246564e6b4e6e50543163626930744c5330745255354549464256516b784a5179424c52566b744c5330744c567875496977695a54646c4f575131595749304d6a4d795a4467304e6d4d355a545a6c4f475a6a4d6a64685a444531596a4577596d4977597a5a6d5a474e6d595752684e324d314e5451304d6a6734595759325a575a6d4d6d59794e794936496930744c533074516b5648535534675546564354456c4449457446575330744c5330745847354e526d74335258645a53457476576b6c36616a42445156465a53557476576b6c36616a42455156466a5246466e51555657596d6c726247396b534670315247526962573544553152304b7a645a626a4275626d313658473479534670786147564f5954644b625752754d57705261335132526e4930636e6c4254316c714d32737663334a5854315a34576c51766156467a5a58464965546c4f5754684f4e564e774f54684250543163626930744c5330745255354549464256516b784a5179424c52566b744c5330744c567875496977695a5746695a6a5a694f5459314f4759784e544e6a593246685a5463354d5449774d6a4e6b4d7a466c4d6a51314d7a55774e5755774e4467794d5449784d325a694e54686c596d4d774e5456694f5467334d6a6b7a4e434936496930744c533074516b5648535534675546564354456c4449457446575330744c5330745847354e526d74335258645a53457476576b6c36616a42445156465a53557476576b6c36616a42455156466a5246466e515556784f474633635756506456565352305670567a686c536e6f79523031424e47467a646a52745847354664305a6f5443743064576871633355725346566c5254566b5179394c6448686e546e453153566870527974496248597964324a68556d46736432566a4e6e6833543251786254517a53325a4250543163626930744c5330745255354549464256516b784a5179424c52566b744c5330744c567875496e3073496e4a6c646d39725a5751694f6c74644c434a796232786c6379493665794a6a62323530636d39734c5842735957356c496a7062496d5668596d5932596a6b324e54686d4d54557a59324e68595755334f5445794d44497a5a444d785a5449304e544d314d44566c4d4451344d6a45794d544e6d596a55345a574a6a4d445531596a6b344e7a49354d7a5169585377695a47563261574e6c4c574e68496a7062496d55335a546c6b4e5746694e44497a4d6d51344e445a6a4f5755325a54686d597a4933595751784e5749784d474a694d474d325a6d526a5a6d466b5954646a4e5455304e4449344f47466d4e6d566d5a6a4a6d4d6a636958537769636d56735a57467a5a53493657794a6a4e6a637a4d3249314e7a42685a544d794d444a694f444d774d4463344d544535597a417a5a6d59774e5745775954417a5a54466a4e324e6a4d7a6b324e6a5a6d5a6a51314e47526d4f546b79597a5131596a6335496c3073496e4a76623351694f6c73694d325579597a49795a446b334d6d4e694e5467784d3256684e7a677a596d59344e32497a4d6d4a684f574a694e546c6d59544d7a4f4449784d324d775932597a5a444a6c597a64684f474d344e7a6c68596d4a694d534a6466537769646d567963326c76626949364d58303d222c227369676e617475726573223a5b7b226b65796964223a2233653263323264393732636235383133656137383362663837623332626139626235396661333338323133633063663364326563376138633837396162626231222c22736967223a224d45554349436a765a444e76536c583061386544386f616138336d586f376d387a5047564d674c77623477697a6b4674416945417a414857702b364d7753374771682f6673427132514f6c4656654c446c315436466f486c6a366559516d453d227d5d7d', '2026-12-06 06:36:22.918049+00');


--
-- Name: apitoken_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.apitoken_id_seq', 4, true);


--
-- Name: deployment_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.deployment_id_seq', 2, true);


--
-- Name: deploymenttarget_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.deploymenttarget_id_seq', 5, true);


--
-- Name: enrollmenttoken_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.enrollmenttoken_id_seq', 6, true);


--
-- Name: heartbeatsample_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.heartbeatsample_id_seq', 7, true);


--
-- Name: modelvariant_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.modelvariant_id_seq', 1, false);


--
-- Name: modelversion_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.modelversion_id_seq', 3, true);


--
-- Name: rollout_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.rollout_id_seq', 1, true);


--
-- Name: rolloutdevice_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.rolloutdevice_id_seq', 4, true);


--
-- Name: apitoken apitoken_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.apitoken
    ADD CONSTRAINT apitoken_pkey PRIMARY KEY (id);


--
-- Name: deployment deployment_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deployment
    ADD CONSTRAINT deployment_pkey PRIMARY KEY (id);


--
-- Name: deploymenttarget deploymenttarget_deployment_id_device_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deploymenttarget
    ADD CONSTRAINT deploymenttarget_deployment_id_device_id_key UNIQUE (deployment_id, device_id);


--
-- Name: deploymenttarget deploymenttarget_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deploymenttarget
    ADD CONSTRAINT deploymenttarget_pkey PRIMARY KEY (id);


--
-- Name: device device_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device
    ADD CONSTRAINT device_pkey PRIMARY KEY (id);


--
-- Name: devicecommand devicecommand_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devicecommand
    ADD CONSTRAINT devicecommand_pkey PRIMARY KEY (device_id);


--
-- Name: deviceidentity deviceidentity_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deviceidentity
    ADD CONSTRAINT deviceidentity_pkey PRIMARY KEY (device_id);


--
-- Name: enrollmenttoken enrollmenttoken_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.enrollmenttoken
    ADD CONSTRAINT enrollmenttoken_pkey PRIMARY KEY (id);


--
-- Name: fleet fleet_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.fleet
    ADD CONSTRAINT fleet_pkey PRIMARY KEY (name);


--
-- Name: heartbeatsample heartbeatsample_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.heartbeatsample
    ADD CONSTRAINT heartbeatsample_pkey PRIMARY KEY (id);


--
-- Name: issuedcertificate issuedcertificate_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.issuedcertificate
    ADD CONSTRAINT issuedcertificate_pkey PRIMARY KEY (serial);


--
-- Name: lease lease_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.lease
    ADD CONSTRAINT lease_pkey PRIMARY KEY (name);


--
-- Name: model model_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.model
    ADD CONSTRAINT model_pkey PRIMARY KEY (name);


--
-- Name: modelvariant modelvariant_model_version_id_variant_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelvariant
    ADD CONSTRAINT modelvariant_model_version_id_variant_key UNIQUE (model_version_id, variant);


--
-- Name: modelvariant modelvariant_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelvariant
    ADD CONSTRAINT modelvariant_pkey PRIMARY KEY (id);


--
-- Name: modelversion modelversion_model_version_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelversion
    ADD CONSTRAINT modelversion_model_version_key UNIQUE (model, version);


--
-- Name: modelversion modelversion_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelversion
    ADD CONSTRAINT modelversion_pkey PRIMARY KEY (id);


--
-- Name: rollout rollout_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout
    ADD CONSTRAINT rollout_pkey PRIMARY KEY (id);


--
-- Name: rolloutdevice rolloutdevice_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rolloutdevice
    ADD CONSTRAINT rolloutdevice_pkey PRIMARY KEY (id);


--
-- Name: rolloutdevice rolloutdevice_rollout_id_device_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rolloutdevice
    ADD CONSTRAINT rolloutdevice_rollout_id_device_id_key UNIQUE (rollout_id, device_id);


--
-- Name: trustversion trustversion_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.trustversion
    ADD CONSTRAINT trustversion_pkey PRIMARY KEY (version);


--
-- Name: ix_apitoken_token_sha256; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ix_apitoken_token_sha256 ON public.apitoken USING btree (token_sha256);


--
-- Name: ix_deployment_fleet; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_deployment_fleet ON public.deployment USING btree (fleet);


--
-- Name: ix_deployment_model_version_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_deployment_model_version_id ON public.deployment USING btree (model_version_id);


--
-- Name: ix_deploymenttarget_deployment_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_deploymenttarget_deployment_id ON public.deploymenttarget USING btree (deployment_id);


--
-- Name: ix_deploymenttarget_device_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_deploymenttarget_device_id ON public.deploymenttarget USING btree (device_id);


--
-- Name: ix_device_fleet; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_device_fleet ON public.device USING btree (fleet);


--
-- Name: ix_devicecommand_deployment_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_devicecommand_deployment_id ON public.devicecommand USING btree (deployment_id);


--
-- Name: ix_enrollmenttoken_device_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_enrollmenttoken_device_id ON public.enrollmenttoken USING btree (device_id);


--
-- Name: ix_enrollmenttoken_token_sha256; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ix_enrollmenttoken_token_sha256 ON public.enrollmenttoken USING btree (token_sha256);


--
-- Name: ix_heartbeatsample_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_heartbeatsample_at ON public.heartbeatsample USING btree (at);


--
-- Name: ix_heartbeatsample_device_model_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_heartbeatsample_device_model_at ON public.heartbeatsample USING btree (device_id, model, at);


--
-- Name: ix_issuedcertificate_device_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_issuedcertificate_device_id ON public.issuedcertificate USING btree (device_id);


--
-- Name: ix_modelvariant_model_version_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_modelvariant_model_version_id ON public.modelvariant USING btree (model_version_id);


--
-- Name: ix_modelversion_model; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_modelversion_model ON public.modelversion USING btree (model);


--
-- Name: ix_rollout_fleet; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rollout_fleet ON public.rollout USING btree (fleet);


--
-- Name: ix_rollout_model; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rollout_model ON public.rollout USING btree (model);


--
-- Name: ix_rollout_model_version_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rollout_model_version_id ON public.rollout USING btree (model_version_id);


--
-- Name: ix_rollout_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rollout_state ON public.rollout USING btree (state);


--
-- Name: ix_rolloutdevice_device_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rolloutdevice_device_id ON public.rolloutdevice USING btree (device_id);


--
-- Name: ix_rolloutdevice_rollout_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rolloutdevice_rollout_id ON public.rolloutdevice USING btree (rollout_id);


--
-- Name: deployment deployment_fleet_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deployment
    ADD CONSTRAINT deployment_fleet_fkey FOREIGN KEY (fleet) REFERENCES public.fleet(name);


--
-- Name: deployment deployment_model_version_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deployment
    ADD CONSTRAINT deployment_model_version_id_fkey FOREIGN KEY (model_version_id) REFERENCES public.modelversion(id);


--
-- Name: deploymenttarget deploymenttarget_deployment_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deploymenttarget
    ADD CONSTRAINT deploymenttarget_deployment_id_fkey FOREIGN KEY (deployment_id) REFERENCES public.deployment(id);


--
-- Name: deploymenttarget deploymenttarget_device_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deploymenttarget
    ADD CONSTRAINT deploymenttarget_device_id_fkey FOREIGN KEY (device_id) REFERENCES public.device(id);


--
-- Name: device device_fleet_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device
    ADD CONSTRAINT device_fleet_fkey FOREIGN KEY (fleet) REFERENCES public.fleet(name);


--
-- Name: devicecommand devicecommand_deployment_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devicecommand
    ADD CONSTRAINT devicecommand_deployment_id_fkey FOREIGN KEY (deployment_id) REFERENCES public.deployment(id);


--
-- Name: devicecommand devicecommand_device_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devicecommand
    ADD CONSTRAINT devicecommand_device_id_fkey FOREIGN KEY (device_id) REFERENCES public.device(id);


--
-- Name: deviceidentity deviceidentity_device_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deviceidentity
    ADD CONSTRAINT deviceidentity_device_id_fkey FOREIGN KEY (device_id) REFERENCES public.device(id);


--
-- Name: modelvariant modelvariant_model_version_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelvariant
    ADD CONSTRAINT modelvariant_model_version_id_fkey FOREIGN KEY (model_version_id) REFERENCES public.modelversion(id);


--
-- Name: modelversion modelversion_model_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.modelversion
    ADD CONSTRAINT modelversion_model_fkey FOREIGN KEY (model) REFERENCES public.model(name);


--
-- Name: rollout rollout_deployment_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout
    ADD CONSTRAINT rollout_deployment_id_fkey FOREIGN KEY (deployment_id) REFERENCES public.deployment(id);


--
-- Name: rollout rollout_fleet_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout
    ADD CONSTRAINT rollout_fleet_fkey FOREIGN KEY (fleet) REFERENCES public.fleet(name);


--
-- Name: rollout rollout_model_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout
    ADD CONSTRAINT rollout_model_fkey FOREIGN KEY (model) REFERENCES public.model(name);


--
-- Name: rollout rollout_model_version_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout
    ADD CONSTRAINT rollout_model_version_id_fkey FOREIGN KEY (model_version_id) REFERENCES public.modelversion(id);


--
-- Name: rollout rollout_rollback_of_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollout
    ADD CONSTRAINT rollout_rollback_of_fkey FOREIGN KEY (rollback_of) REFERENCES public.rollout(id);


--
-- Name: rolloutdevice rolloutdevice_device_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rolloutdevice
    ADD CONSTRAINT rolloutdevice_device_id_fkey FOREIGN KEY (device_id) REFERENCES public.device(id);


--
-- Name: rolloutdevice rolloutdevice_previous_model_version_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rolloutdevice
    ADD CONSTRAINT rolloutdevice_previous_model_version_id_fkey FOREIGN KEY (previous_model_version_id) REFERENCES public.modelversion(id);


--
-- Name: rolloutdevice rolloutdevice_rollout_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rolloutdevice
    ADD CONSTRAINT rolloutdevice_rollout_id_fkey FOREIGN KEY (rollout_id) REFERENCES public.rollout(id);


--
-- PostgreSQL database dump complete
--

\unrestrict DFjgt01nmcDiCqEhqL47JmXkb8pTuBSD3aecBtY336X5U8YRIMhCK4Da0aaRORl

