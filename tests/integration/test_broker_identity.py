"""The broker enforces identity: a real Mosquitto started with the configuration
``edgefleet-controlplane broker-config`` generates, a control plane connected to it with
its own client certificate, and devices enrolled for real.

A client holding device A's certificate receives none of B's commands (counted on
delivery: Mosquitto grants the subscription and must deliver nothing), cannot take B's
client id or the control plane's, and cannot change the retained trust document or any
command. No certificate, an expired one, one from another CA and a revoked one are
refused at connect.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.agent import Agent
from agent.config import AgentConfig, config_from_mapping
from controlplane.broker_config import DEFAULT_IDENTITY
from controlplane.broker_config_cmd import main as broker_config
from model_store import generate_private_key, load_private_key
from model_store.device_certs import issue_device_certificate, make_csr, to_pem
from protocol import TRUST_TOPIC, TopicKind, device_topic
from tests.support.controlplane import (
    ControlPlaneProcess,
    run_controlplane,
    signed_bundle,
    upload_bundle,
)
from tests.support.mosquitto import Broker, run_mosquitto_config
from tests.support.ports import free_port, wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

FLEET = "lab"


@dataclass
class Secure:
    broker: Broker
    cp: ControlPlaneProcess
    http: httpx.Client
    conf: Path
    data_dir: Path
    kit: TrustKit
    workdir: Path

    def refresh_crl(self) -> None:
        """Rewrite only the CRL (from the database) and reload the broker; the keys and
        certificates in use stay as they are."""
        keys = {p.name: p.read_bytes() for p in self.conf.glob("*.key")}
        args = ["--out", str(self.conf), "--device-ca-key", str(self.kit.device_ca_key)]
        assert broker_config([*args, "--data-dir", str(self.data_dir), "--crl-only"]) == 0
        assert keys == {p.name: p.read_bytes() for p in self.conf.glob("*.key")}
        os.kill(self.broker.process.pid, signal.SIGHUP)

    def enroll(self, device_id: str) -> tuple[Path, Path]:
        """Enroll ``device_id`` through the API: its certificate and key files."""
        key = generate_private_key()
        http = self.http
        created = http.post(f"/api/v1/devices/{device_id}/enrollment", json={"fleet": FLEET})
        assert created.status_code == 201, created.text
        answer = http.post(
            "/api/v1/enroll",
            json={"token": created.json()["token"], "csr": make_csr(key, device_id).decode()},
        )
        assert answer.status_code == 200, answer.text
        return self._files(device_id, answer.json()["certificate"].encode(), key)

    def _files(self, name: str, cert: bytes, key: Any) -> tuple[Path, Path]:
        from cryptography.hazmat.primitives import serialization

        cert_path, key_path = self.workdir / f"{name}.crt", self.workdir / f"{name}.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


class Client:
    """A paho client on the secure listener, recording what it receives."""

    def __init__(self, s: Secure, client_id: str, files: tuple[Path, Path] | None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.refused: str | None = None
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        context = ssl.create_default_context(cafile=str(s.conf / "ca.crt"))
        if files is not None:
            context.load_cert_chain(str(files[0]), str(files[1]))
        self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_message = self._on_message
        self._port = s.broker.port

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def connect(self, timeout: float = 10.0) -> bool:
        """True once the broker accepted us; False (and closed) if it refused, in the TLS
        handshake or the CONNACK, or the connection died at once."""
        try:
            self.client.connect("127.0.0.1", self._port)
        except (ssl.SSLError, OSError) as exc:
            self.refused = f"{type(exc).__name__}: {exc}"
            self.close()
            return False
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.refused is not None or self.disconnected.is_set():
                break
            time.sleep(0.05)
        self.close()
        return False

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.received if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


@pytest.fixture
def secure(tmp_path: Path, trust_kit: TrustKit) -> Iterator[Secure]:
    conf, port = tmp_path / "broker-config", free_port()
    data_dir = tmp_path / "cp" / "controlplane-data"  # where run_controlplane keeps it
    args = [
        *("--out", str(conf), "--device-ca-key", str(trust_kit.device_ca_key)),
        *("--port", str(port), "--bind", "127.0.0.1", "--host", "127.0.0.1"),
        *("--data-dir", str(data_dir)),
    ]
    assert broker_config(args) == 0
    assert (conf / f"{DEFAULT_IDENTITY}.key").stat().st_mode & 0o777 == 0o600
    with run_mosquitto_config(conf / "mosquitto.conf", port, tmp_path / "broker") as broker:
        env = {
            "EDGEFLEET_MQTT_CA": str(conf / "ca.crt"),
            "EDGEFLEET_MQTT_CERT": str(conf / f"{DEFAULT_IDENTITY}.crt"),
            "EDGEFLEET_MQTT_KEY": str(conf / f"{DEFAULT_IDENTITY}.key"),
        }
        url = f"mqtts://127.0.0.1:{port}"
        with (
            run_controlplane(tmp_path / "cp", mqtt_url=url, trust_kit=trust_kit, env=env) as cp,
            cp.client() as http,
        ):
            wait_until(
                lambda: http.get("/api/v1/status").json()["connected"], 20, "control plane on"
            )
            yield Secure(broker, cp, http, conf, data_dir, trust_kit, tmp_path)


def test_refused_at_connect_without_a_valid_unrevoked_certificate(secure: Secure) -> None:
    a = secure.enroll("dev-a")
    first = Client(secure, "x", a)
    assert first.connect(), "an enrolled device connects"
    first.close()
    assert not Client(secure, "anon", None).connect(), "no certificate"

    ca = load_private_key(secure.kit.device_ca_key)
    key = generate_private_key()
    past = datetime.now(UTC) - timedelta(days=3)
    expired = to_pem(
        issue_device_certificate(
            ca, "dev-old", key.public_key(), lifetime=timedelta(days=1), now=past
        )
    )
    assert not Client(secure, "old", secure._files("dev-old", expired, key)).connect(), "expired"

    other_ca = generate_private_key()
    foreign = to_pem(
        issue_device_certificate(other_ca, "dev-a", key.public_key(), lifetime=timedelta(days=1))
    )
    assert not Client(secure, "f", secure._files("foreign", foreign, key)).connect(), "other CA"

    assert secure.http.post("/api/v1/devices/dev-a/revoke").status_code == 200
    secure.refresh_crl()  # the CRL from the database, and SIGHUP: Mosquitto reloads it
    wait_until(lambda: not Client(secure, "x", a).connect(timeout=3), 15, "revoked refused")


def test_a_device_touches_only_its_own_topics(secure: Secure, tmp_path: Path) -> None:
    a, b = secure.enroll("dev-a"), secure.enroll("dev-b")
    http = secure.http
    bundle = signed_bundle(
        tmp_path, name="det", version="1.0.0", private_key=secure.kit.release_key
    )
    assert upload_bundle(http, bundle).status_code == 201
    deployment = http.post(
        "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": FLEET}
    )
    assert deployment.status_code == 201, deployment.text

    real_b = Client(secure, "dev-b", b)
    assert real_b.connect()
    real_b.client.subscribe(device_topic("dev-b", TopicKind.DESIRED), qos=1)
    wait_until(lambda: real_b.on(device_topic("dev-b", TopicKind.DESIRED)), 15, "B's command")
    b_command = real_b.on(device_topic("dev-b", TopicKind.DESIRED))[-1]

    # A's certificate, asking for the control plane's client id, then for B's: the broker
    # names every client after its certificate, so neither is knocked off
    cp_id = Client(secure, DEFAULT_IDENTITY, a)
    assert cp_id.connect()
    time.sleep(1.0)
    assert http.get("/api/v1/status").json()["connected"] is True
    cp_id.close()
    rogue = Client(secure, "dev-b", a)
    assert rogue.connect()
    time.sleep(1.0)
    assert not real_b.disconnected.is_set(), "B was kicked off by a client claiming its id"
    assert http.get("/api/v1/status").json()["connected"] is True
    assert "MQTT connection lost" not in secure.cp.log.read_text(), "the control plane was kicked"

    for topic in ("edgefleet/v1/devices/dev-b/desired", "edgefleet/v1/devices/+/desired", "#"):
        rogue.client.subscribe(topic, qos=1)
    rogue.client.subscribe(TRUST_TOPIC, qos=1)
    wait_until(lambda: rogue.on(device_topic("dev-a", TopicKind.DESIRED)), 15, "A's own command")
    wait_until(lambda: rogue.on(TRUST_TOPIC), 15, "the trust document")
    b_topics = [t for t, _ in rogue.received if "/dev-b/" in t]
    assert b_topics == [], "A received B's traffic"

    # A cannot replace the trust document or B's command, retained or not
    rogue.client.publish(TRUST_TOPIC, b"junk", qos=1, retain=True).wait_for_publish(5)
    rogue.client.publish(
        device_topic("dev-b", TopicKind.DESIRED), b"", qos=1, retain=True
    ).wait_for_publish(5)
    rogue.client.publish(
        device_topic("dev-b", TopicKind.STATE), b'{"forged": 1}', qos=1
    ).wait_for_publish(5)
    time.sleep(1.0)
    fresh = Client(secure, "dev-b", b)
    real_b.close()
    assert fresh.connect()
    fresh.client.subscribe(device_topic("dev-b", TopicKind.DESIRED), qos=1)
    fresh.client.subscribe(TRUST_TOPIC, qos=1)
    wait_until(
        lambda: fresh.on(TRUST_TOPIC) and fresh.on(device_topic("dev-b", TopicKind.DESIRED)),
        15,
        "retained",
    )
    assert fresh.on(device_topic("dev-b", TopicKind.DESIRED))[-1] == b_command
    assert fresh.on(TRUST_TOPIC)[-1] != b"junk"
    for client in (rogue, fresh):
        client.close()
    # nothing A published on B's topics reached the control plane as B's
    assert http.get("/api/v1/devices/dev-b").json()["last_report_at"] is None


def _enrolling_agent(secure: Secure, tmp_path: Path, device_id: str, **more: Any) -> AgentConfig:
    """An agent config for ``device_id`` on the mTLS broker with a fresh enrollment token."""
    created = secure.http.post(f"/api/v1/devices/{device_id}/enrollment", json={"fleet": FLEET})
    assert created.status_code == 201, created.text
    return config_from_mapping(
        {
            "device_id": device_id,
            "fleet": FLEET,
            "broker_url": f"mqtts://127.0.0.1:{secure.broker.port}",
            "control_plane_url": secure.cp.url,
            "data_dir": str(tmp_path / device_id),
            "root_keys": [str(secure.kit.root_pub)],
            "trust": str(secure.kit.trust_file),
            "local_api": "127.0.0.1:0",
            "enrollment_token": created.json()["token"],
            **more,
        }
    )


def test_a_real_agent_enrolls_and_reports_over_mutual_tls(secure: Secure, tmp_path: Path) -> None:
    """``edge-agent`` with an enrollment token and ``mqtts://``: it enrolls, connects with
    its own certificate (the broker's checked against the CA it enrolled with) and reports."""
    config = _enrolling_agent(secure, tmp_path, "cam-1", heartbeat_interval_s=0.5)
    with Agent(config, facts={"test": True}):
        wait_until(
            lambda: (
                (d := secure.http.get("/api/v1/devices/cam-1").json())["online"]
                and d["last_heartbeat"] is not None
            ),
            30,
            "cam-1 online over mTLS, its reports believed",
        )
    log = secure.broker.log.read_text()
    assert "cam-1" in log, "the broker knows the client by its certificate's name"


def test_an_agent_the_broker_refuses_says_so_in_its_log(
    secure: Secure, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Revoked: the broker closes the TLS connection before any CONNACK (TLS 1.3 sends the
    certificate alert only then); the agent logs each refused attempt with the likely cause
    instead of retrying in silence."""
    config = _enrolling_agent(secure, tmp_path, "cam-2")
    with Agent(config, facts={"test": True}) as agent:
        wait_until(lambda: agent.connected, 30, "cam-2 connected")
    assert secure.http.post("/api/v1/devices/cam-2/revoke").status_code == 200
    secure.refresh_crl()
    identity = tmp_path / "cam-2" / "identity"
    own = (identity / "device.crt", identity / "device.key")
    # SIGHUP is applied asynchronously: wait until cam-2's own certificate is refused
    wait_until(lambda: not Client(secure, "probe", own).connect(timeout=3), 15, "revoked")
    with (
        caplog.at_level(logging.INFO, logger="agent.link.mqtt_link"),
        Agent(config, facts={"test": True}),
    ):
        wait_until(lambda: "a refused client certificate" in caplog.text, 30, "the refusal logged")
    refused = [r for r in caplog.records if "closed the connection before accepting" in r.message]
    assert refused[0].levelno == logging.WARNING  # the first of a streak is a warning
