"""The live rollout view and ``rollouts show``, rendered from answers shaped as
``GET /api/v1/rollouts/{id}`` gives them (issue 6 contract)."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from edgectl.errors import RolloutFailed, RolloutPaused, WatchTimeout
from edgectl.live import LiveView, changes, render_rollout
from edgectl.rollout_cmds import render_details
from edgectl.table import when
from edgectl.wait import Followed, outcome


def _counts(**given: int) -> dict[str, int]:
    keys = ("pending", "updating", "activated", "failed", "regressed", "rolled_back")
    counts = {k: given.get(k, 0) for k in keys}
    counts["total"] = sum(counts.values())
    return counts


AT = "2025-05-01T12:00:00Z"


def _rollout() -> dict[str, Any]:
    return {
        "id": 7,
        "model": "det",
        "version": "1.5.0",
        "fleet": "store-eu",
        "selector": {"hw": "xeon-amx"},
        "strategy": {"canary": 2, "canary_pct": None, "batches": 2, "wait_s": 0.0},
        "state": "running",
        "reason": None,
        "current_batch": 1,
        "previous_version": "1.4.0",
        "rollback_of": None,
        "deployment_id": 12,
        "created_at": AT,
        "updated_at": AT,
        "counts": _counts(activated=3, updating=2, pending=5),
        "batches": [
            {
                "index": 0,
                "size": 2,
                "state": "done",
                "started_at": AT,
                "done_at": AT,
                "counts": _counts(activated=2),
            },
            {
                "index": 1,
                "size": 4,
                "state": "running",
                "started_at": AT,
                "done_at": None,
                "counts": _counts(activated=1, updating=2, pending=1),
            },
            {
                "index": 2,
                "size": 4,
                "state": "pending",
                "started_at": None,
                "done_at": None,
                "counts": _counts(pending=4),
            },
        ],
        "devices": [
            {
                "device_id": "sim-000",
                "batch": 0,
                "status": "activated",
                "reason": None,
                "baseline": {"requests": 400, "errors": 2, "p95_ms": 10.2},
                "observed": {"requests": 50, "errors": 0, "p95_ms": 10.9},
                "updated_at": AT,
            },
            {
                "device_id": "sim-003",
                "batch": 1,
                "status": "updating",
                "reason": None,
                "baseline": None,
                "observed": None,
                "updated_at": AT,
            },
        ],
        "history": [
            {"at": AT, "event": "started", "message": "batch 0 (canary): 2 devices"},
            {"at": AT, "event": "batch_started", "message": "batch 1: 4 devices"},
        ],
    }


def test_render_shows_every_batch_with_active_failed_pending() -> None:
    lines = render_rollout(_rollout())
    at = when(AT, clock=True)
    assert lines == [
        "rollout 7: det 1.5.0 to fleet store-eu (hw=xeon-amx)  [running, batch 2 of 3]",
        "BATCH     SIZE  ACTIVE  FAILED  PENDING  STATE    NOTE",
        "1 canary  2     2       0       0        done",
        "2         4     1       0       3        running  2 updating",
        "3         4     0       0       4        pending",
        "10 devices: 3 active, 0 failed, 7 pending (2 updating)",
        f"{at} batch_started: batch 1: 4 devices",
    ]


def test_render_of_a_paused_rollout_gives_the_reason() -> None:
    rollout = _rollout()
    rollout["state"] = "paused"
    rollout["reason"] = "latency gate: sim-003: p95 31.0 ms vs 10.2 ms (+204%)"
    rollout["batches"][1]["counts"] = _counts(activated=3, regressed=1)
    rollout["batches"][2]["size"] = 1
    first = render_rollout(rollout)
    assert first[0].endswith("[paused: latency gate: sim-003: p95 31.0 ms vs 10.2 ms (+204%)]")
    assert first[3].split() == ["2", "4", "3", "0", "0", "running", "1", "regressed"]
    assert (
        changes(None, rollout)[-3] == "batch 3: 1 device, 0 active, 0 failed, 4 pending [pending]"
    )


def test_render_without_batches() -> None:
    rollout = _rollout() | {"batches": [], "history": [], "counts": _counts(), "state": "completed"}
    rollout["reason"] = "no devices match"
    assert render_rollout(rollout) == [
        "rollout 7: det 1.5.0 to fleet store-eu (hw=xeon-amx)  [completed: no devices match]",
        "(no batches: no device matches)",
        "0 devices: 0 active, 0 failed, 0 pending",
    ]


def test_changes_prints_only_what_moved() -> None:
    first = _rollout()
    at = when(AT, clock=True)
    assert changes(None, first) == [
        "rollout 7: det 1.5.0 to fleet store-eu (hw=xeon-amx)",
        "rollout 7: running, batch 2 of 3",
        "canary batch 1: 2 devices, 2 active, 0 failed, 0 pending [done]",
        "batch 2: 4 devices, 1 active, 0 failed, 3 pending (2 updating) [running]",
        "batch 3: 4 devices, 0 active, 0 failed, 4 pending [pending]",
        f"{at} started: batch 0 (canary): 2 devices",
        f"{at} batch_started: batch 1: 4 devices",
    ]
    assert changes(first, copy.deepcopy(first)) == []
    second = copy.deepcopy(first)
    second["batches"][1]["counts"] = _counts(activated=3, failed=1)
    second["batches"][1]["state"] = "done"
    second["history"].append({"at": AT, "event": "batch_done", "message": "batch 1 done"})
    assert changes(first, second) == [
        "batch 2: 4 devices, 3 active, 1 failed, 0 pending [done]",
        f"{at} batch_done: batch 1 done",
    ]


def test_live_view_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=True)
    view.update(_rollout())
    drawn = out.getvalue()
    assert "\x1b[" not in drawn and drawn.count("\n") == 7
    view.update(_rollout())
    assert out.getvalue() == drawn  # nothing changed: nothing redrawn
    changed = _rollout() | {"state": "paused"}
    view.update(changed)
    assert out.getvalue()[len(drawn) :].startswith("\x1b[7F\x1b[J")
    view.note("control plane unreachable, retrying")
    tail = out.getvalue().rsplit("\x1b[J", 1)[1]
    assert tail.endswith("control plane unreachable, retrying\n") and tail.count("\n") == 8


def test_live_view_prints_changes_when_piped() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=False)
    view.update(_rollout())
    view.update(_rollout())
    view.note("control plane unreachable, retrying")
    view.note("control plane unreachable, retrying")
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 and lines[-1] == "control plane unreachable, retrying"
    assert "\x1b" not in out.getvalue()


def test_details_list_devices_figures_and_history() -> None:
    text = render_details(_rollout())
    assert "sim-000  1      activated  p95 10.2 ms, 0.5% err, 400 req  p95 10.9 ms" in text
    assert "sim-003  2      updating   -" in text
    assert "history:\n" in text and text.count("batch_started") == 1
    assert "previous version: 1.4.0" in text


def _ended(state: str, reason: str | None = None, **counts: int) -> Followed:
    rollout = _rollout() | {"state": state, "reason": reason, "counts": _counts(**counts)}
    return Followed(rollout, timed_out=False)


def test_outcome_decides_the_exit_code() -> None:
    done = _ended("completed", "all 10 devices updated", activated=10)
    assert outcome(done) == "rollout 7 completed: all 10 devices updated"
    with pytest.raises(RolloutFailed, match="rollout 7 aborted: failure threshold") as info:
        outcome(_ended("aborted", "failure threshold: 3 of 5 finished devices failed"))
    assert info.value.exit_code == 1
    with pytest.raises(RolloutFailed, match="completed, but 2 failed of 10 device"):
        outcome(_ended("completed", "8 of 10 devices updated (2 failed)", activated=8, failed=2))
    mixed = _ended(
        "completed", "all 10 updated (1 failed, 2 regressed)", activated=7, failed=1, regressed=2
    )
    with pytest.raises(RolloutFailed, match="but 1 failed and 2 regressed of 10 device"):
        outcome(mixed)
    with pytest.raises(RolloutPaused, match=r"paused: latency gate: .*rollouts resume 7") as paused:
        outcome(_ended("paused", "latency gate: sim-003: p95 31.0 ms vs 10.2 ms (+204%)"))
    assert paused.value.exit_code == 4
    with pytest.raises(WatchTimeout, match="still running after 5m") as late:
        outcome(Followed(_rollout(), timed_out=True, timeout=300))
    assert late.value.exit_code == 5


def test_the_view_says_when_the_gate_waits_for_traffic() -> None:
    rollout = _rollout()
    rollout["strategy"]["gate"] = {"min_requests": 20, "no_traffic_timeout_s": 300.0}
    rollout["devices"][1] |= {"status": "activated", "observed": {"requests": 3}}
    rollout["devices"].append(
        {"device_id": "sim-004", "batch": 1, "status": "activated", "observed": None}
    )
    wait = (
        "gate: waiting for traffic: 2 devices have fewer than 20 requests on the new "
        "version; each passes unjudged 5m after it activated"
    )
    hint = (
        "to wait less, push with --gate-min-requests N (fewer requests), "
        "--gate-no-traffic 30s (a shorter idle time) or --no-gate"
    )
    view = render_rollout(rollout)
    assert view[-3] == wait
    assert view[-2] == f"  ({hint}; Ctrl-C only stops watching)"
    assert changes(_rollout(), rollout) == [wait, f"  ({hint})"]
    assert changes(rollout, rollout) == []
    late = Followed(rollout, timed_out=True, timeout=60)
    with pytest.raises(WatchTimeout, match=f"still running after 1m; .*{wait} \\(to wait less"):
        outcome(late)
    rollout["strategy"]["gate"]["enabled"] = False
    assert wait not in render_rollout(rollout)


def test_the_view_says_at_once_what_the_gate_waits_for() -> None:
    rollout = _rollout()
    rollout["strategy"]["gate"] = {"min_requests": 1, "no_traffic_timeout_s": 30.0}
    rule = (
        "gate: each device judged after 1 request on the new version, "
        "or passed unjudged 30s after it activated without them"
    )
    assert rule in render_rollout(rollout)
    assert rule in changes(None, rollout)
    rollout["strategy"]["gate"]["enabled"] = False
    assert not any(line.startswith("gate:") for line in render_rollout(rollout))


def test_the_final_line_counts_devices_the_gate_did_not_judge() -> None:
    done = _ended("completed", "1 device updated", activated=1)
    done.rollout["devices"] = [{"device_id": "sim-000", "reason": "not judged: no traffic"}]
    assert outcome(done) == (
        "rollout 7 completed: 1 device updated (1 device not judged by the gate: no "
        "traffic; to wait less, push with --gate-min-requests N (fewer requests), "
        "--gate-no-traffic 30s (a shorter idle time) or --no-gate)"
    )
