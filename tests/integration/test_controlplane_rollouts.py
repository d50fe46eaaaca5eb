"""Rollouts end to end in one process, on SQLite and on PostgreSQL.

The real app (routes, auth, rollout driver, ingester, command signer) is served by a
real uvicorn with its lifespan; MQTT is the in-memory publisher. Each simulated device
plays its agent's part with real protocol messages: it opens the signed command the
control plane published for it (verifying the signature), reports deployment events
and state, and sends heartbeats with inference figures. The driver is stepped by hand
(``tick``) where a test needs exact steps, and by its own thread in the restart test.
``Plane`` and ``open_plane`` are ``tests.support.rollout_plane``; ``plane`` is a fixture of
``tests/integration/conftest.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from controlplane.models import Rollout
from controlplane.publisher import MemoryPublisher
from controlplane.rollouts.driver import MAX_STEP_FAILURES
from protocol import SHADOW_GATE_PREFIX
from tests.support.controlplane import register_version
from tests.support.ports import wait_until
from tests.support.rollout_plane import Plane, open_plane
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


def _events(rollout: dict[str, Any]) -> list[str]:
    return [entry["event"] for entry in rollout["history"]]


def test_canary_then_batches_progress_as_devices_activate(plane: Plane) -> None:
    ids = plane.fleet_on_v1(6)
    rollout = plane.start({"canary": 1, "batches": 2, "gate": {"min_requests": 20}})
    assert rollout["state"] == "running" and rollout["previous_version"] == "1.0.0"
    assert [(b["index"], b["size"], b["state"]) for b in rollout["batches"]] == [
        (0, 1, "running"),
        (1, 3, "pending"),
        (2, 2, "pending"),
    ]
    assert rollout["counts"] == {
        "pending": 5,
        "updating": 1,
        "retrying": 0,
        "activated": 0,
        "failed": 0,
        "regressed": 0,
        "rolled_back": 0,
        "skipped": 0,
        "total": 6,
    }
    # only the canary was sent 2.0.0, in the request itself
    assert [plane.desired_version(i) for i in ids] == ["2.0.0"] + ["1.0.0"] * 5
    canary = rollout["devices"][0]
    assert canary["device_id"] == "d00" and canary["status"] == "updating"
    assert canary["baseline"] == {"requests": 500, "errors": 0, "p95_ms": 10.0}

    plane.healthy_v2("d00")
    plane.tick(3)  # activated; judged "pass"; batch 1 starts
    rollout = plane.rollout(rollout["id"])
    assert [b["state"] for b in rollout["batches"]] == ["done", "running", "pending"]
    assert rollout["devices"][0]["observed"] == {"requests": 100, "errors": 0, "p95_ms": 10.5}
    assert [plane.desired_version(i) for i in ids] == ["2.0.0"] * 4 + ["1.0.0"] * 2

    for device_id in ids[1:4]:
        plane.healthy_v2(device_id)
    plane.tick(3)
    assert [plane.desired_version(i) for i in ids] == ["2.0.0"] * 6
    for device_id in ids[4:]:
        plane.healthy_v2(device_id)
    plane.tick(3)
    rollout = plane.rollout(rollout["id"])
    assert rollout["state"] == "completed", rollout["history"]
    assert rollout["reason"] == "all 6 devices updated"
    assert rollout["counts"]["activated"] == 6
    assert all(b["state"] == "done" and b["done_at"] for b in rollout["batches"])
    assert _events(rollout) == [
        "created",
        "batch_started",
        "batch_done",
        "batch_started",
        "batch_done",
        "batch_started",
        "batch_done",
        "completed",
    ]
    assert rollout["history"][1]["message"] == "canary batch (1 of 3) started: 1 device"
    listed = plane.get("/rollouts?state=completed&fleet=f")
    assert [r["id"] for r in listed] == [rollout["id"]] and "devices" not in listed[0]
    assert plane.get("/rollouts?state=running") == []


def test_a_device_in_a_pending_batch_does_not_get_the_version(plane: Plane) -> None:
    ids = plane.fleet_on_v1(4)
    rollout = plane.start({"canary": 1, "batches": 1})
    before = plane.publisher.latest("d03")
    plane.report("d03")  # it reconnects and reports its full state
    plane.tick(2)
    assert plane.publisher.latest("d03") == before
    assert plane.desired_version("d03") == "1.0.0"
    # a device registering mid-rollout gets what the fleet settled on, not the new version
    plane.report("new1")
    assert plane.desired_version("new1") == "1.0.0"
    assert "new1" not in plane.statuses(rollout["id"])

    plane.healthy_v2("d00")
    plane.tick(3)
    for device_id in ids[1:]:
        plane.healthy_v2(device_id)
    plane.tick(3)
    assert plane.rollout(rollout["id"])["state"] == "completed"
    # once the rollout completed, the new version is what later devices get
    plane.obey("new1")
    plane.report("new1")
    assert plane.desired_version("new1") == "2.0.0"
    plane.report("new2")
    assert plane.desired_version("new2") == "2.0.0"


def test_failure_threshold_aborts_and_rolls_back_updated_devices(plane: Plane) -> None:
    ids = plane.fleet_on_v1(5)
    rollout = plane.start(
        {"canary": 3, "batches": 1, "max_failures_pct": 20, "min_finished": 2},
    )
    plane.healthy_v2("d00")
    plane.obey("d01", fail="verify failed: digest mismatch")
    plane.obey("d02", fail="activation failed: out of memory")
    plane.tick()
    rollout = plane.rollout(rollout["id"])
    assert rollout["state"] == "aborted"
    assert rollout["reason"] == "failure threshold: 2 of 3 finished devices failed (66.7% > 20%)"
    assert plane.statuses(rollout["id"]) == {
        "d00": "rolled_back",
        "d01": "rolled_back",
        "d02": "rolled_back",
        "d03": "skipped",
        "d04": "skipped",
    }
    assert rollout["devices"][0]["reason"] == "rolled back to det 1.0.0"
    assert [b["state"] for b in rollout["batches"]] == ["aborted", "skipped"]
    # the updated devices' desired state is the previous version again; pending untouched
    assert [plane.desired_version(i) for i in ids] == ["1.0.0"] * 5
    assert [plane.command(i).generation for i in ids[3:]] == [1, 1]  # type: ignore[union-attr]
    plane.obey("d00")
    assert plane.running["d00"][0] == "1.0.0"
    assert "device_failed" in _events(rollout) and _events(rollout)[-1] == "aborted"
    plane.tick()  # an aborted rollout is not driven any more
    assert plane.rollout(rollout["id"])["history"] == rollout["history"]


def test_a_rollout_started_before_a_rollback_landed_goes_back_to_the_rollback(
    plane: Plane,
) -> None:
    """Retrying a version right after an abort, while the devices still report the
    aborted version: the retry's previous version is where the rollback sends them."""
    ids = plane.fleet_on_v1(2)
    first = plane.start({"gate": {"enabled": False}})
    for device_id in ids:
        plane.healthy_v2(device_id)
    plane.post(f"/rollouts/{first['id']}/abort", {"reason": "operator"})
    assert [plane.desired_version(i) for i in ids] == ["1.0.0", "1.0.0"]
    assert [plane.running[i][0] for i in ids] == ["2.0.0", "2.0.0"]  # not obeyed yet
    retry = plane.start({"gate": {"enabled": False}})
    plane.post(f"/rollouts/{retry['id']}/abort", {"reason": "operator again"})
    assert [plane.desired_version(i) for i in ids] == ["1.0.0", "1.0.0"]
    assert plane.statuses(retry["id"]) == {i: "rolled_back" for i in ids}


@pytest.mark.parametrize("action", ["pause", "abort"])
def test_latency_regression_trips_the_gate(plane: Plane, action: str) -> None:
    ids = plane.fleet_on_v1(3)
    rollout = plane.start(
        {"canary": 1, "batches": 1, "gate": {"action": action, "latency_pct": 25}}
    )
    plane.healthy_v2("d00", p95=31.0)
    plane.tick(2)  # activated; judged
    rollout = plane.rollout(rollout["id"])
    expected = "latency gate: d00: p95 31.0 ms vs 10.0 ms before (+210%, limit +25%)"
    assert rollout["reason"] == expected
    device = rollout["devices"][0]
    assert device["observed"]["p95_ms"] == 31.0 and device["baseline"]["p95_ms"] == 10.0
    if action == "pause":
        assert rollout["state"] == "paused" and device["status"] == "regressed"
        assert plane.desired_version("d01") == "1.0.0"
        plane.tick(3)
        assert plane.rollout(rollout["id"])["state"] == "paused"  # it stays paused
        resumed = plane.post(f"/rollouts/{rollout['id']}/resume", {"reason": "known slow box"})
        assert resumed["state"] == "running" and resumed["reason"] is None
        plane.tick(2)  # the regressed canary is finished: the next batch starts
        assert [plane.desired_version(i) for i in ids] == ["2.0.0"] * 3
    else:
        assert rollout["state"] == "aborted" and device["status"] == "rolled_back"
        assert [plane.desired_version(i) for i in ids] == ["1.0.0"] * 3


def test_a_paused_rollout_records_what_its_devices_report(plane: Plane) -> None:
    """Seen: after one device's shadow gate paused a rollout, the others failed theirs
    too, but the rollout listed them as "updating" until it was resumed."""
    plane.fleet_on_v1(3)
    rollout = plane.start({"batches": 1, "shadow": {"duration_s": 60}})
    rid = rollout["id"]
    disagree = f"{SHADOW_GATE_PREFIX} sim: agreement 0% < 99% over 700 requests"
    plane.obey("d00", fail=disagree)
    plane.tick(2)
    assert plane.rollout(rid)["state"] == "paused"
    assert plane.statuses(rid) == {"d00": "regressed", "d01": "updating", "d02": "updating"}
    commands = {i: plane.publisher.latest(i) for i in ("d01", "d02")}
    plane.obey("d01", fail=disagree)
    plane.healthy_v2("d02")  # its shadow passed (before it heard of the pause): switched
    plane.tick(2)
    paused = plane.rollout(rid)
    assert paused["state"] == "paused"  # recorded, not driven: nothing decided or sent
    assert plane.statuses(rid) == {"d00": "regressed", "d01": "regressed", "d02": "activated"}
    assert {i: plane.publisher.latest(i) for i in commands} == commands
    assert _events(paused)[-1] == "device_regressed"
    assert paused["history"][-1]["message"] == f"d01: {disagree}"
    plane.post(f"/rollouts/{rid}/resume")
    plane.tick(3)  # the resumed rollout goes on from the recorded rows
    done = plane.rollout(rid)
    assert done["state"] == "completed", done["history"]
    assert (done["counts"]["activated"], done["counts"]["regressed"]) == (1, 2)


def test_install_timeout_fails_a_silent_device(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    rollout = plane.start({"batches": 1, "install_timeout_s": 60})
    plane.healthy_v2("d00")
    plane.tick(2)
    plane.tick(after_s=61)
    statuses = plane.rollout(rollout["id"])["devices"]
    assert [(d["status"], d["reason"]) for d in statuses] == [
        ("activated", None),
        ("failed", "timed out after 60 s (last status: pending)"),
    ]


def test_operator_controls_and_invalid_transitions(plane: Plane) -> None:
    plane.fleet_on_v1(3)
    rollout = plane.start({"canary": 1, "batches": 2})
    rid = rollout["id"]
    plane.post("/rollouts", {"model": "det", "version": "2.0.0", "fleet": "f"}, 409)
    assert plane.post(f"/rollouts/{rid}/resume", None, 409)["detail"] == (
        f"rollout {rid} is running: only a paused rollout can be resumed"
    )
    paused = plane.post(f"/rollouts/{rid}/pause", {"reason": "lunch"})
    assert paused["state"] == "paused" and paused["reason"] == "lunch"
    plane.post(f"/rollouts/{rid}/pause", None, 409)
    plane.healthy_v2("d00")
    plane.tick(4)
    assert plane.rollout(rid)["batches"][1]["state"] == "pending"  # paused: nothing starts
    assert plane.post(f"/rollouts/{rid}/resume")["state"] == "running"
    aborted = plane.post(f"/rollouts/{rid}/abort")
    assert aborted["state"] == "aborted"
    assert aborted["reason"] == "aborted by bootstrap (admin) via api"
    assert plane.desired_version("d00") == "1.0.0"
    for verb in ("pause", "resume", "abort"):
        plane.post(f"/rollouts/{rid}/{verb}", None, 409)
    assert [e for e in _events(aborted) if e in ("paused", "resumed", "aborted")] == [
        "paused",
        "resumed",
        "aborted",
    ]

    # the abort already sent its one updated device back: a rollback has nothing to do
    assert aborted["rollback_devices"] == 0
    assert plane.post(f"/rollouts/{rid}/rollback", None, 409)["detail"] == (
        f"rollout {rid}: nothing to roll back (every device it updated is back on its "
        "previous version or was sent a later deployment since)"
    )

    assert plane.http.get("/api/v1/rollouts/999").status_code == 404
    assert plane.post("/rollouts/999/pause", None, 404)["detail"] == "unknown rollout 999"
    bad = {"model": "det", "version": "2.0.0", "fleet": "f"}
    detail = plane.post("/rollouts", bad | {"strategy": {"canary": 1, "canary_pct": 5}}, 422)
    assert detail["detail"] == "invalid strategy: give canary or canary_pct, not both"
    assert plane.post("/rollouts", bad | {"strategy": {"wat": 1}}, 422)["detail"] == (
        "invalid strategy: unknown strategy key 'wat'"
    )
    assert plane.post("/rollouts", bad | {"fleet": "nope"}, 404)["detail"] == "unknown fleet 'nope'"
    assert plane.post("/rollouts", bad | {"version": "9.9"}, 404)["detail"] == (
        "unknown version '9.9' of model 'det'"
    )
    assert plane.post("/rollouts", bad | {"selector": {"bad key": "x"}}, 422)["detail"]


def test_a_running_rollout_is_rolled_back_by_aborting_it(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    rollout = plane.start({"canary": 1})
    plane.healthy_v2("d00")
    refused = plane.post(f"/rollouts/{rollout['id']}/rollback", None, 409)
    assert refused["detail"] == (
        f"rollout {rollout['id']} is running: abort it instead (an abort sends every device "
        "it updated back to the version it ran before)"
    )
    assert plane.rollout(rollout["id"])["state"] == "running"


def test_rollback_sends_each_device_its_own_previous_version_gated(plane: Plane) -> None:
    """Issue 13.6: before rollout B (3.0.0) d00 ran 1.0.0 and d01 2.0.0 (an earlier rollout
    to d01 alone). Rolling B back sends each device its own version, never one it has not
    run, through the health gate unless the operator says otherwise."""
    plane.fleet_on_v1(2)
    plane.http.patch("/api/v1/devices/d01/labels", json={"set": {"ring": "early"}})
    early = plane.start({"gate": {"enabled": False}}, selector={"ring": "early"})
    plane.healthy_v2("d01")
    plane.tick()
    assert plane.rollout(early["id"])["state"] == "completed"
    b = plane.start({"gate": {"enabled": False}}, version="3.0.0")
    for device_id in ("d00", "d01"):
        plane.obey(device_id)
    plane.tick()
    assert plane.rollout(b["id"])["state"] == "completed"
    assert plane.rollout(b["id"])["rollback_devices"] == 2

    back = plane.post(f"/rollouts/{b['id']}/rollback", None, 201)
    assert back["rollback_of"] == b["id"] and back["strategy"]["gate"]["enabled"] is True
    assert {plane.desired_version(d) for d in ("d00", "d01")} == {"1.0.0", "2.0.0"}
    assert [plane.desired_version(d) for d in ("d00", "d01")] == ["1.0.0", "2.0.0"]
    for device_id, version in (("d00", "1.0.0"), ("d01", "2.0.0")):
        plane.obey(device_id)
        plane.heartbeat(device_id, (version, 100, 0, 10.0))
    plane.tick()  # activated now: judged on the next tick, as any rollout's devices
    assert plane.rollout(back["id"])["state"] == "running"
    plane.tick()
    done = plane.rollout(back["id"])
    assert done["state"] == "completed" and done["reason"] == "all 2 devices updated", done
    assert all(d["observed"]["requests"] == 100 for d in done["devices"])
    assert [plane.running[d][0] for d in ("d00", "d01")] == ["1.0.0", "2.0.0"]
    # B's devices are back: nothing more to roll back
    assert plane.rollout(b["id"])["rollback_devices"] == 0
    plane.post(f"/rollouts/{b['id']}/rollback", None, 409)
    # undoing the rollback, ungated: each device's own previous version is 3.0.0
    ungated = {"strategy": {"gate": {"enabled": False}}}
    again = plane.post(f"/rollouts/{back['id']}/rollback", ungated, 201)
    assert again["strategy"]["gate"]["enabled"] is False and again["version"] == "3.0.0"
    assert [plane.desired_version(d) for d in ("d00", "d01")] == ["3.0.0", "3.0.0"]


def test_a_rollout_over_no_matching_device_is_refused(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    body = {"model": "det", "version": "2.0.0", "fleet": "f", "selector": {"region": "mars"}}
    refused = plane.post("/rollouts", body, status=409)
    assert refused == {"detail": "no device of fleet f matches region=mars: nothing to roll out"}
    assert plane.get("/rollouts") == []
    assert plane.desired_version("d00") == "1.0.0"


def test_a_restarted_control_plane_carries_on_mid_rollout(
    tmp_path: Path, trust_kit: TrustKit, database_url: str
) -> None:
    broker = MemoryPublisher()  # outlives both control planes, like retained MQTT
    with open_plane(tmp_path, trust_kit, database_url, broker) as first:
        ids = first.fleet_on_v1(4)
        rid = first.start({"canary": 1, "batches": 3})["id"]
        first.healthy_v2("d00")
        first.tick(3)  # the canary done, batch 1 started
        assert [first.desired_version(i) for i in ids] == ["2.0.0"] * 2 + ["1.0.0"] * 2
        running = dict(first.running)
    # the control plane stops mid-rollout; a new one starts on the same database
    with open_plane(
        tmp_path, trust_kit, database_url, broker, tick_s=0.05, register=False
    ) as second:
        second.running = running

        def devices_follow() -> bool:
            for device_id in ids:
                if second.has_news(device_id):
                    second.healthy_v2(device_id)
            return bool(second.rollout(rid)["state"] == "completed")

        wait_until(devices_follow, 30, "the rollout to complete after the restart")
        rollout = second.rollout(rid)
        assert second.driver.ticks > 0
        assert rollout["counts"]["activated"] == 4
        assert [second.desired_version(i) for i in ids] == ["2.0.0"] * 4
        assert _events(rollout).count("batch_started") == 4


def test_a_broken_rollout_is_logged_in_one_line_and_the_others_go_on(
    plane: Plane, caplog: pytest.LogCaptureFixture
) -> None:
    plane.fleet_on_v1(2)
    register_version(plane.engine, "cls", "1.0.0", digest="cc" * 32)
    broken = plane.start({"batches": 1})
    good = plane.start({"gate": {"enabled": False}}, model="cls", version="1.0.0")
    with Session(plane.engine) as session:
        row = session.get(Rollout, broken["id"])
        assert row is not None
        row.strategy = {"batches": "many"}
        session.add(row)
        session.commit()
    plane.obey("d00")  # both devices take cls 1.0.0, the latest command each got
    plane.obey("d01")
    with caplog.at_level(logging.ERROR, logger="controlplane.rollouts.driver"):
        plane.tick(2)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("\n" not in e for e in errors)
    assert errors[0] == (
        f"rollout {broken['id']}: driver step failed: "
        "ValueError: strategy.batches must be a number, not 'many'"
    )
    assert plane.rollout(good["id"])["state"] == "completed"
    assert plane.rollout(broken["id"])["state"] == "running"
    plane.post(f"/rollouts/{broken['id']}/pause")  # an operator looks into it ...
    plane.tick()
    plane.post(f"/rollouts/{broken['id']}/resume")  # ... and resumes: counted afresh
    plane.tick(MAX_STEP_FAILURES - 1)
    assert plane.rollout(broken["id"])["state"] == "running"  # a glitch is retried ...
    plane.tick()  # ... a step failing every tick pauses the rollout, saying why
    paused = plane.rollout(broken["id"])
    assert paused["state"] == "paused"
    assert paused["reason"] == (
        f"the driver failed to step it {MAX_STEP_FAILURES} times in a row: "
        "ValueError: strategy.batches must be a number, not 'many'"
    )
    assert plane.post(f"/rollouts/{broken['id']}/abort")["state"] == "aborted"


def test_abort_leaves_devices_a_later_deployment_was_sent_to(plane: Plane) -> None:
    """An operator sends 2.0.0 to the whole fleet at once while the gated rollout of it is
    paused, then aborts the rollout: the abort must not undo that newer deployment."""
    ids = plane.fleet_on_v1(3)
    rollout = plane.start({"canary": 1, "batches": 1})
    plane.healthy_v2(ids[0])
    plane.tick()
    plane.post(f"/rollouts/{rollout['id']}/pause", {"reason": "waiting for the night"})
    plane.post("/deployments", {"model": "det", "version": "2.0.0", "fleet": "f"}, 201)
    assert [plane.desired_version(i) for i in ids] == ["2.0.0"] * 3
    aborted = plane.post(f"/rollouts/{rollout['id']}/abort", {"reason": "superseded"})
    assert aborted["state"] == "aborted"
    canary = next(d for d in aborted["devices"] if d["device_id"] == ids[0])
    assert canary["status"] == "activated"
    assert canary["reason"].startswith("not rolled back: deployment ")
    assert aborted["history"][-1]["message"] == (
        "superseded; aborted by bootstrap (admin) via api; 0 devices rolled back, 1 kept "
        "the newer deployment they were sent since, 2 never started (skipped)"
    )
    assert [plane.desired_version(i) for i in ids] == ["2.0.0"] * 3
