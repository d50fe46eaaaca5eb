"""Issue 13 (points 1 and 7) on the real control plane app: a device is judged on its
final outcome, and nothing claims a success that is not.

Devices are simulated with real protocol messages (``tests.support.rollout_plane``):
signed commands opened as an agent does, deployment events, state reports, heartbeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.publisher import MemoryPublisher
from protocol import EventKind
from tests.support.rollout_plane import Plane, open_plane
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

REFUSED = "model.sig: ConnectError: [Errno 111] Connection refused"


@pytest.fixture
def plane(tmp_path: Path, trust_kit: TrustKit, database_url: str) -> Iterator[Plane]:
    with open_plane(tmp_path, trust_kit, database_url, MemoryPublisher()) as p:
        yield p


def _summary(plane: Plane, rollout: dict[str, Any]) -> dict[str, int]:
    """The deployment summary's non-zero counts."""
    summary: dict[str, int] = plane.get(f"/deployments/{rollout['deployment_id']}")["summary"]
    return {status: n for status, n in summary.items() if n}


def test_a_retried_failure_is_not_an_outcome(plane: Plane) -> None:
    plane.fleet_on_v1(4)
    strategy = {"max_failures_pct": 20, "gate": {"min_requests": 20}}
    rid = plane.start(strategy)["id"]
    for device_id in ("d00", "d01", "d02"):
        plane.event(device_id, EventKind.RECEIVED)
        plane.event(device_id, EventKind.RETRYING, REFUSED)
        plane.report(device_id, error=REFUSED)  # the agent's state carries the error meanwhile
    plane.healthy_v2("d03")
    plane.tick()
    rollout = plane.rollout(rid)
    assert rollout["state"] == "running", rollout["reason"]  # no failure threshold tripped
    assert plane.statuses(rid) == {
        "d00": "retrying",
        "d01": "retrying",
        "d02": "retrying",
        "d03": "activated",
    }
    assert rollout["devices"][0]["reason"] == REFUSED
    assert _summary(plane, rollout).get("failed", 0) == 0
    # the agents get there by themselves
    for device_id in ("d00", "d01", "d02"):
        plane.healthy_v2(device_id)
    plane.tick(2)
    rollout = plane.rollout(rid)
    assert rollout["state"] == "completed" and rollout["reason"] == "all 4 devices updated"
    assert _summary(plane, rollout) == {"activated": 4}
    devices = {d["id"]: d for d in plane.get("/devices")}
    assert {d["active_version"] for d in devices.values()} == {"2.0.0"}


def test_a_device_that_failed_then_activated_is_active_and_gated(plane: Plane) -> None:
    plane.fleet_on_v1(3)
    rid = plane.start({"canary": 1, "batches": 1, "gate": {"min_requests": 20}})["id"]
    plane.obey("d00", fail=REFUSED)  # an older agent: 'failed', then it retries anyway
    plane.tick()
    assert plane.statuses(rid)["d00"] == "failed"
    plane.healthy_v2("d00", p95=40.0)  # ... activates, and is slower than before
    plane.tick()
    assert plane.statuses(rid)["d00"] == "activated"
    assert _summary(plane, plane.rollout(rid)) == {"activated": 1}  # the batch's one
    plane.tick()
    rollout = plane.rollout(rid)
    assert rollout["state"] == "paused" and rollout["reason"].startswith("latency gate: d00: ")
    assert plane.statuses(rid)["d00"] == "regressed"
    assert [e["event"] for e in rollout["history"]].count("device_recovered") == 1


def test_the_device_deadline_fails_a_device_that_keeps_retrying(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    created = plane.start({"install_timeout_s": 120, "gate": {"enabled": False}})
    assert created["strategy"]["install_timeout_s"] == 120
    plane.healthy_v2("d00")
    plane.event("d01", EventKind.RETRYING, REFUSED)
    plane.tick()
    assert plane.statuses(created["id"])["d01"] == "retrying"
    plane.tick(after_s=121)
    rollout = plane.rollout(created["id"])
    d01 = next(d for d in rollout["devices"] if d["device_id"] == "d01")
    assert d01["status"] == "failed"
    assert d01["reason"] == f"timed out after 120 s (last status: retrying: {REFUSED})"
    assert rollout["state"] == "completed"
    assert rollout["reason"] == "1 of 2 devices updated (1 failed)"


def test_a_strategy_that_cannot_be_followed_says_so(plane: Plane) -> None:
    plane.fleet_on_v1(1)
    rollout = plane.start({"canary": 2, "batches": 3})
    assert rollout["notes"] == [
        "strategy adjusted: canary of 2 asked, 1 device match: the canary is that one",
        "strategy adjusted: 3 batches asked, no device left after the canary: none run",
    ]
    assert [b["size"] for b in rollout["batches"]] == [1]


def test_a_device_that_activates_after_completion_is_recorded(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    rid = plane.start({"gate": {"enabled": False}})["id"]
    plane.healthy_v2("d00")
    plane.obey("d01", fail=REFUSED)  # an older agent: 'failed', and it retries anyway
    plane.tick()
    rollout = plane.rollout(rid)
    assert rollout["state"] == "completed"
    assert rollout["reason"] == "1 of 2 devices updated (1 failed)"
    plane.obey("d01")  # ... and gets there after the rollout completed
    rollout = plane.rollout(rid)
    assert rollout["reason"] == "all 2 devices updated"
    d01 = next(d for d in rollout["devices"] if d["device_id"] == "d01")
    assert d01["status"] == "activated" and "after the rollout completed" in d01["reason"]
    assert rollout["history"][-1]["event"] == "device_recovered"
    assert _summary(plane, rollout) == {"activated": 2}
