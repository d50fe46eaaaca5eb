"""A compromised device on an open broker cannot steer a rollout.

Four simulated devices, enrolled for real, on a Mosquitto with no ACLs at all (so the
broker stops nothing: everything rests on the control plane's end-to-end checks) and a
control plane; a gated rollout of a new version. Meanwhile device A is compromised: the
attacker holds A's key and speaks on the broker as anyone. It forges B's heartbeat (p95
500 ms, 50% errors) and a ``failed`` event for B, unsealed and sealed with A's key;
replays B's real heartbeat; reports a phantom device; dates A's own heartbeat a year
ahead; and claims A moved to fleet ``evil``. Each is dropped and counted, and the real
rollout completes on every device.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from model_store import load_private_key
from model_store.report_seal import seal_report
from protocol import (
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    Heartbeat,
    ModelMetrics,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import run_controlplane, state_report
from tests.support.fleet import FleetStack, open_fleet
from tests.support.identity import DeviceKeys, api_enroller
from tests.support.mqtt_plane import MqttPeer
from tests.support.ports import free_port, wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

V1, V2 = "1.0.0", "1.1.0"
GATE = {"latency_pct": 100.0, "latency_floor_ms": 25.0, "min_requests": 20}


@pytest.fixture(scope="module")
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-rogue-"))
    try:
        with open_fleet(workdir, count=4) as fleet:
            fleet.push(V1, scale=1.0)
            first = fleet.create_rollout(V1)
            fleet.wait_state(first["id"], "completed", timeout=120)
            fleet.wait_versions(dict.fromkeys(fleet.fleet.device_ids, V1), f"all on {V1}")
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Attacker(MqttPeer):
    """Any client on the broker, holding device A's key."""

    def __init__(self, stack: FleetStack, device_a: str) -> None:
        super().__init__(stack.broker.port, "attacker")
        self.key = load_private_key(
            stack.workdir / "devices" / device_a / "identity" / "device.key"
        )
        self.a = device_a
        self.subscribe("edgefleet/v1/devices/#")

    def captured(self, topic: str) -> list[bytes]:
        return [p for p in self.received(topic) if p]

    def send(self, topic: str, payload: bytes) -> None:
        self.publish(topic, payload)

    def seal(self, device: str, stream: str, body: bytes, **kw: Any) -> bytes:
        return seal_report(self.key, device_id=device, stream=stream, body=body, **kw)


def _awful_heartbeat(device: str, at: datetime | None = None) -> bytes:
    figures = ModelMetrics(
        name="det",
        version=V2,
        backend="onnxruntime:CPUExecutionProvider:f32",
        requests=1000,
        errors=500,
        p50_ms=400.0,
        p95_ms=500.0,
        p99_ms=600.0,
    )
    return encode(
        Heartbeat(
            device_id=device,
            at=at or datetime.now(UTC),
            cpu_percent=99.0,
            rss_bytes=1,
            mem_total_bytes=2,
            mem_available_bytes=1,
            mem_percent=50.0,
            load_avg=(9.0, 9.0, 9.0),
            uptime_s=1.0,
            models=[figures],
        )
    )


def _attack(attacker: Attacker, b: str, deployment_id: int, seq: int) -> None:
    beat_b, events_b = device_topic(b, TopicKind.HEARTBEAT), device_topic(b, TopicKind.EVENTS)
    awful = _awful_heartbeat(b)
    attacker.send(beat_b, awful)  # unsealed
    attacker.send(beat_b, attacker.seal(b, "heartbeat", awful, seq=10**6 + seq))  # A's key
    failed = DeploymentEvent(
        device_id=b,
        deployment_id=deployment_id,
        generation=10**6,
        model_name="det",
        model_version=V2,
        kind=EventKind.FAILED,
        reason="forged",
    )
    attacker.send(events_b, attacker.seal(b, "events", encode(failed), seq=10**6 + seq))
    if real := attacker.captured(beat_b):
        attacker.send(beat_b, real[0])  # B's own, replayed
    ghost = StateReport(
        device_id="ghost-001",
        fleet="store-eu",
        agent_version="x",
        status=DeviceStatus.IDLE,
        generation=0,
    )
    ghost_topic = device_topic("ghost-001", TopicKind.STATE)
    attacker.send(ghost_topic, attacker.seal("ghost-001", "state", encode(ghost), seq=seq + 1))
    a_beat = device_topic(attacker.a, TopicKind.HEARTBEAT)
    year = datetime.now(UTC) + timedelta(days=365)
    attacker.send(
        a_beat,
        attacker.seal(
            attacker.a,
            "heartbeat",
            _awful_heartbeat(attacker.a, year),
            seq=10**9 + seq,
            sent_at=year,
        ),
    )
    evil = StateReport(
        device_id=attacker.a,
        fleet="evil",
        agent_version="x",
        status=DeviceStatus.IDLE,
        generation=0,
    )
    attacker.send(
        device_topic(attacker.a, TopicKind.STATE),
        attacker.seal(attacker.a, "state", encode(evil), seq=10**9 + 100 + seq),
    )


def test_a_compromised_device_cannot_steer_a_gated_rollout(stack: FleetStack) -> None:
    ids = sorted(stack.fleet.device_ids)
    a, b = ids[0], ids[1]
    attacker = Attacker(stack, a)
    before = stack.http.get("/api/v1/status").json()
    stack.push(V2, scale=1.0)
    try:
        rollout = stack.create_rollout(
            V2, {"canary": 1, "batches": 2, "wait_s": 2.0, "gate": GATE | {"action": "abort"}}
        )
        deployment_id = rollout.get("deployment_id") or 0
        for i in range(8):
            _attack(attacker, b, int(deployment_id), i)
            time.sleep(0.25)
        done = stack.wait_state(rollout["id"], "completed", timeout=180)
    finally:
        attacker.close()
    assert done["counts"]["activated"] == len(ids), done
    # A is compromised: what it says about itself is its own (here: nothing active, and
    # a sequence number so high its real reports now count as replays, until revoked);
    # every other device is shown as it is, and A's agent itself runs the new version
    stack.wait_versions({d: V2 for d in ids if d != a}, f"the others on {V2}")
    (agent_a,) = [g for g in stack.fleet.agents if g.device_id == a]
    assert [m.version for m in agent_a.active] == [V2]
    after = stack.http.get("/api/v1/status").json()
    assert after["unauthenticated"] - before["unauthenticated"] >= 8 * 4
    assert after["future"] - before["future"] >= 8
    devices = stack.devices()
    assert "ghost-001" not in devices
    assert devices[a]["fleet"] == stack.fleet_name
    assert "evil" not in {f["name"] for f in stack.http.get("/api/v1/fleets").json()}
    assert devices[b]["last_heartbeat"]["models"][0]["p95_ms"] < 500.0


def test_on_the_embedded_broker_forged_replayed_and_future_reports_are_dropped(
    tmp_path: Path, trust_kit: TrustKit
) -> None:
    port = free_port()
    with (
        run_controlplane(
            tmp_path / "cp",
            mqtt_url=f"mqtt://127.0.0.1:{port}",
            trust_kit=trust_kit,
            extra_args=["--embedded-broker", "--broker-port", str(port)],
        ) as cp,
        cp.client() as http,
    ):
        wait_until(lambda: http.get("/api/v1/status").json()["connected"], 20, "bridge")
        devices = DeviceKeys(api_enroller(http))
        peer = MqttPeer(port, "anyone")
        try:
            topic = device_topic("dev-1", TopicKind.STATE)
            sealed = devices.seal(topic, state_report("dev-1", "lab"))
            peer.publish(topic, sealed)
            wait_until(
                lambda: bool(http.get("/api/v1/devices/dev-1").json()["last_report_at"]),
                10,
                "the real report",
            )
            before = http.get("/api/v1/status").json()
            peer.publish(topic, sealed)  # replayed
            peer.publish(topic, state_report("dev-1", "lab", status="failed"))  # not sealed
            stranger = seal_report(
                load_private_key(trust_kit.release_key),  # any key but dev-1's
                device_id="dev-1",
                stream="state",
                seq=10**6,
                body=state_report("dev-1", "lab", status="failed"),
            )
            peer.publish(topic, stranger)
            year = datetime.now(UTC) + timedelta(days=365)
            peer.publish(topic, devices.seal(topic, state_report("dev-1", "lab"), sent_at=year))

            def counted() -> bool:
                now = http.get("/api/v1/status").json()
                return (
                    now["replayed"] - before["replayed"] == 1
                    and now["unauthenticated"] - before["unauthenticated"] == 2
                    and now["future"] - before["future"] == 1
                )

            wait_until(counted, 10, "each forgery counted")
            assert http.get("/api/v1/devices/dev-1").json()["status"] == "idle"
        finally:
            peer.close()
