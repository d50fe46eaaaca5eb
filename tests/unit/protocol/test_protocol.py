"""Round trips and rejections of every wire message and topic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

import protocol as p

SHA = "a" * 64


def _samples() -> list[BaseModel]:
    ref = p.FileRef(path="model.onnx", sha256=SHA, size=10)
    return [
        p.DesiredState(
            device_id="dev-1",
            generation=7,
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
            trust_version=2,
            models=[
                p.ModelAssignment(
                    deployment_id=3,
                    name="det",
                    version="1.4.0",
                    bundle_digest=SHA,
                    size=910,
                    signature=p.FileRef(path="model.sig", sha256=SHA, size=900),
                    files=[ref],
                )
            ],
        ),
        p.StateReport(
            device_id="dev-1",
            fleet="store-eu",
            agent_version="0.1.0",
            status=p.DeviceStatus.ACTIVE,
            generation=7,
            active=[
                p.ActiveModel(
                    name="det",
                    version="1.4.0",
                    bundle_digest=SHA,
                    backend="onnxruntime-cpu",
                    deployment_id=3,
                )
            ],
            hardware={"arch": "x86_64", "cores": 4},
        ),
        p.DesiredState(
            device_id="dev-1",
            generation=8,
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
            trust_version=2,
            models=[_PINNED],
        ),
        p.StateReport(
            device_id="dev-1",
            fleet="store-eu",
            agent_version="0.2.0",
            status=p.DeviceStatus.ACTIVE,
            generation=8,
            active=[
                p.ActiveModel(
                    name="det",
                    version="1.4.0",
                    bundle_digest=SHA,
                    backend="openvino:CPU:bf16",
                    deployment_id=3,
                    selection=_SELECTION,
                )
            ],
        ),
        _SELECTION,
        p.SignedEnvelope(
            payload_type=p.DESIRED_STATE_PAYLOAD_TYPE,
            payload="e30=",
            signatures=[p.EnvelopeSignature(keyid="k" * 64, sig="c2ln")],
        ),
        p.DeploymentEvent(
            device_id="dev-1",
            deployment_id=3,
            generation=7,
            model_name="det",
            model_version="1.4.0",
            kind=p.EventKind.FAILED,
            reason="bad signature",
        ),
        p.Heartbeat(
            device_id="dev-1",
            cpu_percent=12.5,
            rss_bytes=1 << 20,
            mem_total_bytes=1 << 30,
            mem_available_bytes=1 << 29,
            mem_percent=50.0,
            load_avg=(0.1, 0.2, 0.3),
            uptime_s=12.0,
        ),
        p.Heartbeat(
            device_id="dev-1",
            cpu_percent=3.0,
            rss_bytes=1 << 20,
            mem_total_bytes=1 << 30,
            mem_available_bytes=1 << 29,
            mem_percent=50.0,
            load_avg=(0.0, 0.0, 0.0),
            uptime_s=1.5,
            disk=p.DiskUsage(total_bytes=100, used_bytes=40, free_bytes=55, percent=42.1),
            temperatures=[p.Temperature(sensor="coretemp", label="Core 0", celsius=48.0)],
            models=[
                _MODEL_METRICS,
                p.ModelMetrics(name="det", version="1.3.0", backend="x", requests=0, errors=0),
            ],
        ),
        _MODEL_METRICS,
        p.Availability(device_id="dev-1", online=False),
    ]


_PINNED = p.ModelAssignment(
    deployment_id=3,
    name="det",
    version="1.4.0",
    bundle_digest=SHA,
    size=910,
    signature=p.FileRef(path="model.sig", sha256=SHA, size=900),
    files=[p.FileRef(path="model.onnx", sha256=SHA, size=10)],
    backend="openvino:GPU.0:f16",
)

_SELECTION = p.SelectionReport(
    chosen="openvino:CPU:bf16",
    reason="lowest p50 (0.812 ms)",
    profile="xeon-amx",
    elapsed_s=4.25,
    candidates=[
        p.CandidateFigures(
            key="onnxruntime:CPUExecutionProvider:f32", p50_ms=2.5, p99_ms=3.1, runs=200
        ),
        p.CandidateFigures(
            key="openvino:CPU:bf16", p50_ms=0.812, p99_ms=1.0, runs=600, rel_error=0.004
        ),
        p.CandidateFigures(
            key="openvino:CPU:f16", p50_ms=None, p99_ms=None, excluded="load failed: no f16"
        ),
    ],
)

_MODEL_METRICS = p.ModelMetrics(
    name="det",
    version="1.4.0",
    backend="onnxruntime-cpu",
    requests=120,
    errors=3,
    errors_by_kind={"invalid_input": 2, "inference": 1},
    p50_ms=0.25,
    p95_ms=0.9,
    p99_ms=1.75,
)


@pytest.mark.parametrize("message", _samples(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: BaseModel) -> None:
    wire = p.encode(message)
    assert p.decode(type(message), wire) == message


@pytest.mark.parametrize("kind", list(p.TopicKind))
def test_topic_round_trips_and_names_its_message(kind: p.TopicKind) -> None:
    topic = p.device_topic("store-eu-001", kind)
    assert topic.startswith("edgefleet/v1/devices/")
    assert p.parse_device_topic(topic) == ("store-eu-001", kind)
    assert p.message_type_for(kind).__name__ in {
        "SignedEnvelope",
        "StateReport",
        "DeploymentEvent",
        "Heartbeat",
        "Availability",
    }


@pytest.mark.parametrize("device_id", ["", "a/b", "+", "#", "dev 1", "-lead", "x" * 129])
def test_device_ids_cannot_smuggle_topic_levels(device_id: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.device_topic(device_id, p.TopicKind.STATE)


@pytest.mark.parametrize(
    "topic",
    [
        "edgefleet/v1/devices/d1",
        "edgefleet/v1/devices/d1/state/x",
        "other/d1/state",
        "edgefleet/v1/devices/d1/bogus",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.parse_device_topic(topic)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"device_id": "d1"}',
        b'{"device_id": "d/1", "online": true}',
        b'{"device_id": "d1", "generation": -1}',
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_malformed_payloads_raise_one_line_protocol_errors(payload: bytes) -> None:
    for message_type in (p.DesiredState, p.SignedEnvelope, p.Availability):
        with pytest.raises(p.ProtocolError) as info:
            p.decode(message_type, payload)
        assert "\n" not in str(info.value)


def test_bad_digest_in_desired_state_is_refused() -> None:
    wire = p.encode(_samples()[0]).replace(SHA.encode(), b"Z" * 64, 1)
    with pytest.raises(p.ProtocolError, match=r"bundle_digest|sha256"):
        p.decode(p.DesiredState, wire)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    msg = p.decode(p.Availability, b'{"device_id": "d1", "online": true, "future": 1}')
    assert msg.online is True and msg.protocol_version == p.PROTOCOL_VERSION


def test_heartbeats_of_older_agents_still_parse() -> None:
    old = b"""{"device_id": "d1", "cpu_percent": 1.0, "rss_bytes": 1, "mem_total_bytes": 2,
        "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0, 0, 0], "uptime_s": 3}"""
    beat = p.decode(p.Heartbeat, old)
    assert beat.disk is None and beat.temperatures == [] and beat.models == []
    with pytest.raises(p.ProtocolError, match=r"models\.0\.requests"):
        p.decode(
            p.Heartbeat,
            old[:-1] + b', "models": [{"name": "m", "version": "1", '
            b'"backend": "b", "requests": -1, "errors": 0}]}',
        )


@pytest.mark.parametrize("bad", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_figures_are_refused(bad: str) -> None:
    """JSON has no inf / NaN; a heartbeat carrying one (Python's json reads them) is
    malformed, not a figure to store, show or gate a rollout on."""
    beat = f"""{{"device_id": "d1", "cpu_percent": 1.0, "rss_bytes": 1, "mem_total_bytes": 2,
        "mem_available_bytes": 1, "mem_percent": 50.0, "load_avg": [0, 0, 0], "uptime_s": {bad}}}"""
    with pytest.raises(p.ProtocolError, match="uptime_s"):
        p.decode(p.Heartbeat, beat.encode())
    model = (
        '{"name": "m", "version": "1", "backend": "b", "requests": 1, "errors": 0, '
        f'"p95_ms": {bad}}}'
    )
    with pytest.raises(p.ProtocolError, match=r"p95_ms"):
        p.decode(p.ModelMetrics, model.encode())


def test_timestamps_are_timezone_aware() -> None:
    report = p.decode(p.StateReport, p.encode(_samples()[1]))
    assert report.reported_at.tzinfo is not None
    assert report.reported_at <= datetime.now(UTC)


def test_broker_urls_parse_the_same_everywhere_and_never_leak_the_password() -> None:
    addr = p.parse_broker_url("mqtts://dev%2D1:s%40cret@broker.example:8884")
    assert (addr.host, addr.port, addr.tls) == ("broker.example", 8884, True)
    assert (addr.username, addr.password) == ("dev-1", "s@cret")
    assert "cret" not in addr.masked() and "cret" not in p.mask_url("mqtt://u:s3cret@h:1")
    assert p.parse_broker_url("mqtt://h").port == 1883
    for bad in ("http://h", "mqtt://", "mqtt://h:99999", "h:1883"):
        with pytest.raises(p.ProtocolError):
            p.parse_broker_url(bad)


def test_envelopes_use_the_dsse_field_names_on_the_wire() -> None:
    env = p.SignedEnvelope(
        payload_type=p.TRUST_PAYLOAD_TYPE,
        payload="e30=",
        signatures=[p.EnvelopeSignature(keyid="a" * 64, sig="c2ln")],
    )
    wire = p.encode(env)
    assert b'"payloadType":"application/vnd.edgefleet.trust.v1+json"' in wire
    assert p.decode(p.SignedEnvelope, wire) == env
    assert p.TRUST_TOPIC == "edgefleet/v1/trust"


def test_assignments_and_reports_of_older_peers_still_parse() -> None:
    """``backend`` and ``selection`` are optional: a command from an older control plane
    and a report from an older agent parse, and say nothing was pinned or measured."""
    old_assignment = _PINNED.model_dump(mode="json", exclude={"backend"})
    assert p.ModelAssignment.model_validate(old_assignment).backend is None
    report = p.decode(p.StateReport, p.encode(_samples()[1]))
    assert report.active[0].selection is None
    minimal = p.decode(
        p.SelectionReport, b'{"chosen": "x", "reason": "only", "profile": "generic"}'
    )
    assert (minimal.cached, minimal.pinned, minimal.elapsed_s, minimal.candidates) == (
        False,
        False,
        0.0,
        [],
    )


@pytest.mark.parametrize(
    "key",
    [
        "openvino",
        "openvino:CPU",
        "OpenVINO:CPU:bf16",
        "openvino:CPU:bf16:x",
        "openvino:C PU:bf16",
        "openvino:GPU/0:f16",
        "openvino::f32",
        "onnxruntime:CPUExecutionProvider:" + "f" * 100,
    ],
)
def test_a_malformed_pinned_backend_is_refused(key: str) -> None:
    wire = p.encode(_PINNED).replace(b"openvino:GPU.0:f16", key.encode())
    with pytest.raises(p.ProtocolError, match=r"backend"):
        p.decode(p.ModelAssignment, wire)


def test_selection_reports_are_read_leniently() -> None:
    """A device's long error text is cut, not refused, and a figure that JSON cannot hold
    (NaN, infinity) reads as 'not measured': the state report around it still parses."""
    long = "load failed: " + "x" * 5000
    wire = (
        b'{"chosen": "onnxruntime:CPUExecutionProvider:f32", "reason": "r", "profile": "g",'
        b' "elapsed_s": NaN, "future": 1, "candidates": [{"key": "openvino:CPU:bf16",'
        b' "p50_ms": NaN, "p99_ms": Infinity, "rel_error": 0.5, "excluded": "'
        + long.encode()
        + b'"}]}'
    )
    report = p.decode(p.SelectionReport, wire)
    (candidate,) = report.candidates
    assert (candidate.p50_ms, candidate.p99_ms, candidate.rel_error) == (None, None, 0.5)
    assert candidate.excluded is not None and candidate.excluded.startswith("load failed: xxx")
    assert len(candidate.excluded) == 512 and report.elapsed_s == 0.0
    assert b"NaN" not in p.encode(report)
    with pytest.raises(p.ProtocolError, match=r"candidates\.0\.runs"):
        p.decode(
            p.SelectionReport,
            b'{"chosen": "x", "reason": "r", "profile": "g", "candidates": [{"key": "k",'
            b' "runs": -1}]}',
        )


def test_a_shadow_period_travels_in_the_assignment_and_its_figures_in_the_state() -> None:
    """``shadow`` (protocol.shadow) is optional both ways: older peers send none."""
    spec = p.ShadowSpec(duration_s=600, sample=0.2, min_agreement_pct=99, max_latency_ratio=1.25)
    assignment = _PINNED.model_copy(update={"shadow": spec})
    assert p.ModelAssignment.model_validate_json(p.encode(assignment)).shadow == spec
    assert p.ModelAssignment.model_validate(_PINNED.model_dump(mode="json")).shadow is None
    figures = p.ShadowFigures(
        name="det",
        version="2",
        serving_version="1",
        started_at=datetime.now(UTC),
        duration_s=12.5,
        sample=0.2,
        compared=10,
        agreement_pct=90.0,
    )
    report = _samples()[1].model_copy(update={"shadows": [figures]})
    assert p.decode(p.StateReport, p.encode(report)).shadows == [figures]
    assert p.decode(p.StateReport, p.encode(_samples()[1])).shadows == []
    for bad in ({"duration_s": 0, "sample": 0.2}, {"duration_s": 5, "sample": 1.5}):
        with pytest.raises(ValidationError):
            p.ShadowSpec.model_validate(bad)
