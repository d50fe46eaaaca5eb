"""Two control-plane replicas on one Mosquitto and one PostgreSQL, a light fleet of
``COUNT`` devices (issue 15.7).

The replicas share device reports (``EDGEFLEET_MQTT_SHARE_GROUP``: MQTT 5 shared
subscriptions), one database and one blob directory; one of them drives rollouts (the
``rollout-driver`` lease). Replica A starts first and takes the lease; the devices talk
HTTP to B. In order:

1. a canary + batches rollout with a latency gate completes, judged on reports that
   either replica applied;
3. killing A (``kill -9``, the driver) between two batches: B takes the lease once it
   expires and completes the rollout.
2. every report applied exactly once: with heartbeats paused and every spool drained,
   the reports the replicas stored for the first time add up to exactly what the devices
   were acknowledged, none lost, and both replicas took a share;
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.simulator.enroll import api_enrollment
from agent.simulator.light import LightFleet
from tests.support.controlplane import ControlPlaneProcess, run_controlplane
from tests.support.fleet import EventLog, FleetStack
from tests.support.mosquitto import run_mosquitto
from tests.support.postgres import postgres_database
from tests.support.trust import make_trust_kit

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

COUNT = 150
FLEET = "store-eu"
GATE = {"latency_pct": 100.0, "latency_floor_ms": 25.0, "min_requests": 10}
ENV = {"EDGEFLEET_ROLLOUT_TICK_S": "0.5", "EDGEFLEET_MQTT_SHARE_GROUP": "edgefleet"}


def status(cp: ControlPlaneProcess) -> dict[str, Any]:
    response = httpx.get(f"{cp.url}/api/v1/status", headers=cp.headers, timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


class Plane:
    """The stack: ``a`` (starts first, drives), ``b`` (the devices' HTTP), the fleet."""

    def __init__(self, stack: FleetStack, a: ControlPlaneProcess, b: ControlPlaneProcess):
        self.stack, self.a, self.b = stack, a, b

    @property
    def fleet(self) -> LightFleet:
        assert isinstance(self.stack.fleet, LightFleet)
        return self.stack.fleet


@pytest.fixture(scope="module")
def plane() -> Iterator[Plane]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-replicas-"))
    try:
        with ExitStack() as stack:
            broker = stack.enter_context(run_mosquitto(workdir / "mosquitto"))
            kit = make_trust_kit(workdir / "trust")
            db = stack.enter_context(postgres_database())
            shared = ["--data-dir", str(workdir / "cp-data")]  # one blob store for both

            def replica(name: str) -> ControlPlaneProcess:
                return stack.enter_context(
                    run_controlplane(
                        workdir / name,
                        mqtt_url=broker.url,
                        trust_kit=kit,
                        database_url=db,
                        env=ENV,
                        extra_args=shared,
                    )
                )

            a = replica("a")
            wait(lambda: status(a)["rollout_driver"] == status(a)["replica"], "A drives", 30)
            b = replica("b")
            events = EventLog(broker)
            stack.callback(events.close)
            fleet = LightFleet(
                count=COUNT,
                fleet=FLEET,
                broker_url=broker.url,
                control_plane_url=b.url,
                data_dir=workdir / "devices",
                root_keys=[kit.root_pub],
                trust_file=kit.trust_file,
                heartbeat_interval_s=0.5,
                traffic_hz=10.0,
                enrollment=api_enrollment(b.url, b.token, FLEET),
            )
            cp_stack = ExitStack()
            fleet_stack = FleetStack(
                workdir=workdir,
                broker=broker,
                kit=kit,
                fleet=fleet,
                events=events,
                model="det",
                fleet_name=FLEET,
                _cp=b,
                _cp_stack=cp_stack,
            )
            stack.callback(fleet_stack.http.close)
            stack.enter_context(fleet)
            wait(lambda: len(fleet_stack.reported()) >= COUNT, "every device registered", 120)
            yield Plane(fleet_stack, a, b)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_gated_rollout_completes_over_two_replicas(plane: Plane) -> None:
    stack = plane.stack
    stack.push("1.0.0", scale=1.0)
    created = stack.create_rollout("1.0.0", {"canary": 5, "batches": 3, "gate": GATE})
    rollout = stack.wait_state(created["id"], "completed", timeout=180)
    show = json.dumps(rollout, indent=1)
    assert rollout["counts"]["activated"] == COUNT, show
    for device in rollout["devices"]:
        assert device["observed"]["requests"] >= GATE["min_requests"], show
    stack.wait_versions(dict.fromkeys(plane.fleet.device_ids, "1.0.0"), "all on 1.0.0", 30)
    # both replicas applied reports: the broker split them
    assert status(plane.a)["applied"] > 0 and status(plane.b)["applied"] > 0


def test_every_report_is_applied_exactly_once(plane: Plane) -> None:
    fleet = plane.fleet
    fleet.heartbeats(False)
    try:

        def drained() -> bool:
            return all(d.link is not None and d.link.outbox_length == 0 for d in fleet.devices)

        wait(drained, "every device's spool acknowledged", 60)
        links = [d.link for d in fleet.devices if d.link is not None]
        acked = sum(link.outbox_acked for link in links)
        lost = sum(link.outbox_lost + link.outbox_dropped for link in links)
        stored = {
            name: status(cp)["spooled_stored"] for name, cp in (("a", plane.a), ("b", plane.b))
        }
        # each report stored by one replica, once: the replicas' first-time stores add
        # up to exactly what the devices were acknowledged, and none was lost
        assert lost == 0
        assert sum(stored.values()) == acked, (stored, acked)
        assert min(stored.values()) > acked / 4, stored  # the broker split them
    finally:
        fleet.heartbeats(True)


def test_killing_the_driving_replica_hands_the_rollout_over(plane: Plane) -> None:
    stack, a, b = plane.stack, plane.a, plane.b
    assert status(b)["rollout_driver"] == status(a)["replica"]
    stack.push("1.1.0", scale=1.5)
    strategy = {"canary": 5, "batches": 2, "wait_s": 3.0, "gate": GATE}
    created = stack.create_rollout("1.1.0", strategy)

    def canary_done(r: dict[str, Any]) -> bool:
        return r["state"] != "running" or r["batches"][0]["state"] == "done"

    stack.wait_rollout(created["id"], canary_done, "the canary done", 120)
    a.process.send_signal(signal.SIGKILL)
    a.process.wait(10)
    killed = time.monotonic()
    rollout = stack.wait_state(created["id"], "completed", timeout=180)
    assert rollout["counts"]["activated"] == COUNT, json.dumps(rollout, indent=1)
    assert status(b)["rollout_driver"] == status(b)["replica"]
    assert time.monotonic() - killed >= 1.0  # it waited for A's lease, not for nothing
    stack.wait_versions(dict.fromkeys(plane.fleet.device_ids, "1.1.0"), "all on 1.1.0", 30)
