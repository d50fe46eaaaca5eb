"""Light simulated devices (``agent.simulator.light``) against a real Mosquitto and a real
control plane: they enroll, report sealed, verify signed commands, download and check
real bundles, and fake only inference.

One fleet of ``COUNT`` light devices (one process, one event loop) serves the module,
with a heartbeat every 0.5 s and 10 synthetic requests a second per model:

1. a canary + batches rollout with a latency gate completes, every device judged on its
   synthetic figures against its own baseline; its heartbeats are kept as a time series;
2. a version the latency knob slows on two devices of batch 1 trips the gate: aborted,
   rolled back;
3. every device requested the bundle itself (the control plane's access log counts one
   GET of the model file per device), though the process keeps one verified copy;
4. a restarted simulator resumes each device's state from disk: same versions and
   generation at once, and the re-delivered command changes nothing (no download).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.simulator.latency import SlowRule
from agent.simulator.light import LightFleet
from agent.simulator.light.bundles import SHARED_DIR
from tests.support.fleet import FleetStack, open_fleet

pytestmark = pytest.mark.integration

COUNT = 40
V1, V2, V_SLOW = "1.0.0", "1.1.0", "1.2.0"
#: batch 1 of a canary-2 + 3-batch plan over 40 sorted ids is devices 2..13
SLOW_DEVICES = (5, 9)
SLOW_MS = 50.0
GATE = {"latency_pct": 100.0, "latency_floor_ms": 25.0, "min_requests": 10}


def _show(rollout: dict[str, Any]) -> str:
    return json.dumps(rollout, indent=1)


def _model_file(stack: FleetStack, version: str) -> str:
    """The sha256 of the ``model.onnx`` of ``version`` as the control plane has it."""
    response = stack.http.get(f"/api/v1/models/{stack.model}/versions/{version}")
    assert response.status_code == 200, response.text
    files = response.json()["files"]
    (digest,) = [f["sha256"] for f in files if f["path"].endswith(".onnx")]
    return str(digest)


def _gets(stack: FleetStack, sha256: str) -> int:
    """GET requests of that blob in the control plane's access log."""
    log = stack.cp.log.read_text(errors="replace")
    return len(re.findall(rf'"GET /api/v1/blobs/sha256/{sha256} HTTP/1.1" 20[06]', log))


@pytest.fixture(scope="module")
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-light-"))
    slow = [SlowRule(model="det", version=V_SLOW, ms=SLOW_MS, indices=frozenset(SLOW_DEVICES))]
    try:
        with open_fleet(workdir, count=COUNT, light=True, latency_ms=slow) as fleet:
            fleet.push(V1, scale=1.0)
            first = fleet.create_rollout(V1)
            done = fleet.wait_state(first["id"], "completed", timeout=120)
            assert done["counts"]["activated"] == COUNT, _show(done)
            fleet.wait_versions(dict.fromkeys(fleet.fleet.device_ids, V1), f"all on {V1}")
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_gated_rollout_over_light_devices_completes(stack: FleetStack) -> None:
    stack.push(V2, scale=1.5)
    strategy = {"canary": 2, "batches": 3, "gate": GATE}
    created = stack.create_rollout(V2, strategy)
    rollout = stack.wait_state(created["id"], "completed", timeout=120)
    show = _show(rollout)
    assert rollout["counts"]["activated"] == COUNT and rollout["counts"]["failed"] == 0, show
    for device in rollout["devices"]:  # judged on synthetic figures, against a baseline
        assert device["observed"]["requests"] >= GATE["min_requests"], show
        assert device["baseline"] is not None and device["baseline"]["requests"] > 0, show
        assert device["observed"]["p95_ms"] < GATE["latency_floor_ms"], show
    stack.wait_versions(dict.fromkeys(stack.fleet.device_ids, V2), f"all on {V2}", timeout=10)
    # the heartbeats are kept as a time series: the device's traffic on each version
    device_id = stack.fleet.device_ids[0]
    response = stack.http.get(f"/api/v1/devices/{device_id}/history", params={"model": "det"})
    assert response.status_code == 200, response.text
    samples = response.json()
    assert {s["version"] for s in samples} >= {V1, V2}
    on_v2 = [s["requests"] for s in samples if s["version"] == V2]
    assert on_v2 == sorted(on_v2) and on_v2[-1] >= GATE["min_requests"]
    assert stack.http.get("/api/v1/devices/nope/history").status_code == 404


def test_latency_knob_trips_the_gate_on_light_devices(stack: FleetStack) -> None:
    stack.push(V_SLOW, scale=2.5)
    strategy = {"canary": 2, "batches": 3, "gate": GATE | {"action": "abort"}}
    created = stack.create_rollout(V_SLOW, strategy)
    rollout = stack.wait_state(created["id"], "aborted", timeout=120)
    show = _show(rollout)
    ids = sorted(stack.fleet.device_ids)
    assert rollout["reason"].startswith("latency gate: "), show
    (tripped,) = [d for d in rollout["devices"] if d["device_id"] in rollout["reason"]]
    assert tripped["device_id"] in {ids[i] for i in SLOW_DEVICES}, show
    assert tripped["observed"]["p95_ms"] >= SLOW_MS, show
    stack.wait_versions(dict.fromkeys(ids, V2), f"every device back on {V2}", timeout=60)


def test_every_device_downloads_the_bundle_itself(stack: FleetStack) -> None:
    fleet = stack.fleet
    assert isinstance(fleet, LightFleet)
    # V2 went to every device once (canary + batches): one GET of its model per device
    assert _gets(stack, _model_file(stack, V2)) == COUNT
    # ... while the process holds one verified copy, and no device a copy of its own
    shared = stack.workdir / "devices" / SHARED_DIR / "models"
    assert len(list(shared.iterdir())) >= 2
    assert not any((stack.workdir / "devices" / d / "models").exists() for d in fleet.device_ids)


def test_restarted_light_devices_resume_their_state(stack: FleetStack) -> None:
    fleet = stack.fleet
    assert isinstance(fleet, LightFleet)
    ids = fleet.device_ids
    before = {d.device_id: d.generation for d in fleet.devices}
    gets = _gets(stack, _model_file(stack, V2))
    fleet.stop()
    again = LightFleet(
        count=COUNT,
        fleet=stack.fleet_name,
        broker_url=stack.broker.url,
        control_plane_url=stack.cp.url,
        data_dir=stack.workdir / "devices",
        root_keys=[stack.kit.root_pub],
        heartbeat_interval_s=0.5,
        traffic_hz=10.0,
    )
    stack.fleet = again
    with again:
        assert again.versions(stack.model) == dict.fromkeys(ids, V2)  # from disk
        assert {d.device_id: d.generation for d in again.devices} == before
        assert again.wait_connected(30)
        # the retained command is the one they applied: re-delivered, nothing happens
        stack.wait_versions(dict.fromkeys(ids, V2), f"all still on {V2}", timeout=20)
        time.sleep(2.0)
        assert {d.device_id: d.generation for d in again.devices} == before
        assert all(d.refused_commands == 0 for d in again.devices)
        assert _gets(stack, _model_file(stack, V2)) == gets
