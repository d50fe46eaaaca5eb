"""The trust chain over HTTP and MQTT, and signed deployment commands, end to end.

A real uvicorn serves the app (its lifespan runs the real MQTT bridge) on SQLite and on
PostgreSQL, connected to a private Mosquitto; trust documents and bundles are signed
with the keys of the ``trust_kit`` fixture. What reaches the broker is verified as an
agent does: with ``model_store.dsse.open_envelope`` and the control-plane public key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controlplane.app import create_app
from model_store import key_id, load_public_key, write_keypair
from protocol import (
    DESIRED_STATE_FILTER,
    TRUST_TOPIC,
    DesiredState,
    DeviceStatus,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import (
    api_client,
    open_command,
    serve_app,
    settings,
    signed_bundle,
    trust_update,
    upload_bundle,
)
from tests.support.identity import DeviceKeys, api_enroller
from tests.support.mosquitto import Broker
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


def retained(port: int, topic_filter: str, *, wait_for: str, timeout: float = 10) -> bytes:
    """What a client subscribing now gets on ``wait_for`` (the retained message)."""
    got: dict[str, bytes] = {}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv311)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got[msg.topic] = bytes(msg.payload)
        if msg.topic == wait_for:
            done.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    try:
        assert done.wait(timeout), f"nothing retained on {wait_for}"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[wait_for]


@dataclass
class Plane:
    http: httpx.Client
    broker: Broker
    kit: TrustKit
    workdir: Path
    devices: DeviceKeys = field(init=False)

    def __post_init__(self) -> None:
        self.devices = DeviceKeys(api_enroller(self.http))

    def report(self, device_id: str, fleet: str = "lab") -> None:
        report = StateReport(
            device_id=device_id,
            fleet=fleet,
            agent_version="t",
            status=DeviceStatus.IDLE,
            generation=0,
        )
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311
        )
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        topic = device_topic(device_id, TopicKind.STATE)
        sealed = self.devices.seal(topic, encode(report))
        client.publish(topic, sealed, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        wait_until(
            lambda: bool(
                self.http.get(f"/api/v1/devices/{device_id}").json().get("last_report_at")
            ),
            10,
            device_id,
        )

    def command(self, device_id: str) -> tuple[bytes, DesiredState]:
        topic = device_topic(device_id, TopicKind.DESIRED)
        raw = retained(self.broker.port, DESIRED_STATE_FILTER, wait_for=topic)
        return raw, open_command(raw, self.kit)

    def deploy(self, version: str, *, scale: float = 2.0) -> httpx.Response:
        bundle = signed_bundle(
            self.workdir, name="det", version=version, private_key=self.kit.release_key, scale=scale
        )
        assert upload_bundle(self.http, bundle).status_code == 201
        body = {"model": "det", "version": version, "fleet": "lab"}
        return self.http.post("/api/v1/deployments", json=body)


@pytest.fixture
def plane(
    tmp_path: Path, database_url: str, mosquitto: Broker, trust_kit: TrustKit
) -> Iterator[Plane]:
    app = create_app(
        settings(tmp_path, trust_kit, mqtt_url=mosquitto.url, database_url=database_url)
    )
    with serve_app(app) as url, api_client(url, timeout=10) as http:
        wait_until(lambda: http.get("/api/v1/status").json()["connected"], 10, "MQTT bridge")
        yield Plane(http, mosquitto, trust_kit, tmp_path)


def test_trust_chain_is_served_updated_and_published_retained(plane: Plane) -> None:
    kit = plane.kit
    v1 = kit.trust_file.read_bytes()
    assert plane.http.get("/api/v1/trust").content == v1
    assert plane.http.get("/api/v1/trust/1").content == v1
    assert plane.http.get("/api/v1/trust/2").status_code == 404
    assert plane.http.get("/api/v1/trust/0").status_code == 422
    assert retained(plane.broker.port, TRUST_TOPIC, wait_for=TRUST_TOPIC) == v1

    v2 = trust_update(kit, 2)
    accepted = plane.http.post("/api/v1/trust", content=v2)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["version"] == 2
    assert accepted.json()["control_plane_key_certified"] is True
    assert plane.http.get("/api/v1/trust").content == v2
    assert plane.http.get("/api/v1/trust/1").content == v1
    assert plane.http.get("/api/v1/trust/2").content == v2
    # retained: an agent that connects now gets version 2 at once
    assert retained(plane.broker.port, TRUST_TOPIC, wait_for=TRUST_TOPIC) == v2
    again = plane.http.post("/api/v1/trust", content=v2)
    assert again.status_code == 200 and again.json()["created"] is False

    skipping = plane.http.post("/api/v1/trust", content=trust_update(kit, 4))
    assert skipping.status_code == 409
    assert skipping.json()["detail"].endswith("(expected 3)")
    assert plane.http.post("/api/v1/trust", content=v1).status_code == 409

    forger, forger_pub = write_keypair(plane.workdir / "forger", "root")
    forgery = trust_update(kit, 3, roots=[forger_pub], signers=[forger])
    forged = plane.http.post("/api/v1/trust", content=forgery)
    assert forged.status_code == 400
    assert "not signed by a root key of version 2" in forged.json()["detail"]
    garbage = plane.http.post("/api/v1/trust", content=b"{not json")
    assert garbage.status_code == 400 and "\n" not in garbage.json()["detail"]
    huge = plane.http.post("/api/v1/trust", content=b" " * (1024 * 1024 + 1))
    assert huge.status_code == 413
    assert plane.http.get("/api/v1/trust").content == v2


def test_bundle_signed_by_a_revoked_release_key_is_refused(plane: Plane) -> None:
    kit = plane.kit
    new_key, new_pub = write_keypair(plane.workdir / "keys", "release-2")
    v2 = trust_update(kit, 2, releases=[new_pub], revoked=[kit.release_pub])
    assert plane.http.post("/api/v1/trust", content=v2).status_code == 201

    old = signed_bundle(plane.workdir, name="det", version="1", private_key=kit.release_key)
    refused = upload_bundle(plane.http, old)
    assert refused.status_code == 400, refused.text
    assert "untrusted key" in refused.json()["detail"]
    new = signed_bundle(plane.workdir, name="det", version="1", private_key=new_key)
    accepted = upload_bundle(plane.http, new)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["key_id"] == key_id(load_public_key(new_pub))


def test_published_command_is_signed_bounded_and_republished_identically(plane: Plane) -> None:
    plane.report("dev-1")
    deployment = plane.deploy("1.0.0")
    assert deployment.status_code == 201, deployment.text
    raw, state = plane.command("dev-1")
    assert state.device_id == "dev-1" and state.generation == 1 and state.trust_version == 1
    assert timedelta(days=6) < state.expires_at - datetime.now(UTC) <= timedelta(days=7)
    (assignment,) = state.models
    version = plane.http.get("/api/v1/models/det/versions/1.0.0").json()
    declared = version["signature"]["size"] + sum(f["size"] for f in version["files"])
    assert assignment.size == declared
    assert assignment.bundle_digest == version["bundle_digest"]

    # another device joining re-publishes nothing new for dev-1
    plane.report("dev-2")
    wait_until(lambda: plane.command("dev-2")[1].generation == 1, 10, "dev-2 command")
    assert plane.command("dev-1")[0] == raw

    # an operator rollback is a new, higher generation pointing at the older bundle
    assert plane.deploy("2.0.0", scale=4.0).status_code == 201
    wait_until(lambda: plane.command("dev-1")[1].generation == 2, 10, "generation 2")
    rollback = plane.http.post(
        "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": "lab"}
    )
    assert rollback.status_code == 201
    wait_until(lambda: plane.command("dev-1")[1].generation == 3, 10, "generation 3")
    assert plane.command("dev-1")[1].models[0].bundle_digest == version["bundle_digest"]


def test_trust_update_re_signs_commands_with_a_higher_generation(plane: Plane) -> None:
    plane.report("dev-1")
    deployment = plane.deploy("1.0.0").json()
    _, before = plane.command("dev-1")
    assert (before.generation, before.trust_version) == (1, 1)

    assert plane.http.post("/api/v1/trust", content=trust_update(plane.kit, 2)).status_code == 201
    wait_until(lambda: plane.command("dev-1")[1].trust_version == 2, 10, "re-signed under v2")
    _, after = plane.command("dev-1")
    assert after.generation == 2 and after.models == before.models
    assert after.models[0].deployment_id == deployment["id"]
    assert plane.http.get("/api/v1/devices/dev-1").json()["generation"] == 2
    targets = plane.http.get(f"/api/v1/deployments/{deployment['id']}").json()["targets"]
    assert [t["generation"] for t in targets] == [1]  # the deployment itself did not change


def test_trust_update_that_drops_our_key_stops_deployments(plane: Plane) -> None:
    plane.report("dev-1")
    assert plane.deploy("1.0.0").status_code == 201
    before_raw, _ = plane.command("dev-1")
    _, other_cp = write_keypair(plane.workdir / "keys", "cp-2")
    dropped = plane.http.post(
        "/api/v1/trust", content=trust_update(plane.kit, 2, control_planes=[other_cp])
    )
    assert dropped.status_code == 201
    assert dropped.json()["control_plane_key_certified"] is False
    refused = plane.deploy("2.0.0", scale=3.0)
    assert refused.status_code == 503
    kid = key_id(load_public_key(plane.kit.cp_pub))
    assert refused.json()["detail"] == (
        f"control-plane key {kid} is not certified by trust document v2"
    )
    assert plane.command("dev-1")[0] == before_raw  # nothing re-signed with a dropped key
    assert plane.http.get("/api/v1/devices").status_code == 200  # still serving
