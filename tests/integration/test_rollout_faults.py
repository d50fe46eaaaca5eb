"""Issue 13.1: ``kill -9`` of the control plane at each phase of a canary + batches
rollout never changes how it ends.

One fleet serves the module (``tests.support.fleet``): Mosquitto, a control plane process
(SQLite, a 0.5 s rollout tick) and 5 simulated agents serving steady traffic. Each rollout
is a canary of 1 and 2 batches of 2, a wait between batches and the health gate on. A
fault-free rollout is run first, to completion and to an operator abort; then the
control plane is killed with ``kill -9`` (and started again a second later, on the same
database) at each phase, twice per phase:

* while a batch downloads (its devices were just sent the new version);
* during the wait between two batches;
* during gate judgement (devices of the batch activated, the gate waits for traffic);
* right after an operator abort (committed; its commands maybe not published yet).

Each end state (rollout state and reason, batch states, every device's status, the
deployment's summary of a completed rollout, what every agent serves and what the
control plane believes it serves) must be the fault-free one.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import FleetStack, open_fleet

pytestmark = pytest.mark.integration

COUNT = 5
GATE = {"latency_pct": 100.0, "latency_floor_ms": 25.0, "min_requests": 30}
STRATEGY = {"canary": 1, "batches": 2, "wait_s": 2.0, "gate": GATE}
#: How long the control plane stays down after ``kill -9``.
DOWN_S = 1.0
_versions = (f"1.{n}.0" for n in itertools.count(1))

Rollout = dict[str, Any]


def _show(rollout: Rollout) -> str:
    return json.dumps(rollout, indent=1)


def _batch(rollout: Rollout, index: int) -> dict[str, Any]:
    batch: dict[str, Any] = rollout["batches"][index]
    return batch


def _downloading(r: Rollout) -> bool:
    """A batch after the canary was just sent the new version."""
    return r["current_batch"] >= 1 and _batch(r, r["current_batch"])["state"] == "running"


def _waiting(r: Rollout) -> bool:
    """The canary is done, the next batch waits for ``wait_s``."""
    return _batch(r, 0)["state"] == "done" and _batch(r, 1)["state"] == "pending"


def _judging(r: Rollout) -> bool:
    """Devices of the current batch activated; the gate waits for their traffic."""
    current = r["current_batch"]
    return (
        current >= 0
        and _batch(r, current)["state"] == "running"
        and any(d["batch"] == current and d["status"] == "activated" for d in r["devices"])
    )


PHASES: dict[str, Callable[[Rollout], bool]] = {
    "downloading": _downloading,
    "waiting": _waiting,
    "judging": _judging,
}


@pytest.fixture(scope="module")
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-faults-"))
    try:
        with open_fleet(workdir, count=COUNT) as fleet:
            first = next(_versions)
            fleet.push(first, scale=1.0)
            done = fleet.wait_state(fleet.create_rollout(first)["id"], "completed", timeout=120)
            assert done["counts"]["activated"] == COUNT, _show(done)
            fleet.wait_versions(dict.fromkeys(fleet.fleet.device_ids, first), f"all on {first}")
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _end_state(stack: FleetStack, rollout: Rollout, serving: str) -> dict[str, Any]:
    """What a rollout's end is judged on, once every agent serves ``serving``."""
    ids = sorted(stack.fleet.device_ids)
    stack.wait_versions(dict.fromkeys(ids, serving), f"every agent on {serving}", timeout=90)
    end = {
        "state": rollout["state"],
        "reason": rollout["reason"],
        "batches": [b["state"] for b in rollout["batches"]],
        "devices": {d["device_id"]: d["status"] for d in rollout["devices"]},
    }
    if rollout["state"] == "completed":
        # (after an abort, how far the new version got on a device before the rollback
        # superseded it depends on timing, not on the fault: its summary is left out)
        deployment = stack.http.get(f"/api/v1/deployments/{rollout['deployment_id']}").json()
        end["summary"] = {k: n for k, n in deployment["summary"].items() if n}
    return end


def _run(stack: FleetStack, *, phase: str | None, abort: bool) -> dict[str, Any]:
    """One rollout of a new version: killed at ``phase`` (None: no fault; ``aborted``:
    right after the abort), aborted by the operator once batch 2 runs when ``abort``;
    its end state."""
    before = stack.versions()[sorted(stack.fleet.device_ids)[0]]
    version = next(_versions)
    stack.push(version, scale=1.5)
    rid = stack.create_rollout(version, STRATEGY)["id"]
    if phase in PHASES:
        hit = stack.wait_rollout(rid, PHASES[phase], f"phase {phase}", timeout=90, interval=0.1)
        assert hit["state"] == "running", _show(hit)
        stack.restart_controlplane(DOWN_S, kill=True)
    if abort:
        stack.wait_rollout(rid, _downloading, "batch 2 running", timeout=90, interval=0.1)
        answer = stack.http.post(f"/api/v1/rollouts/{rid}/abort", json={"reason": "test"})
        assert answer.status_code == 200, answer.text
        if phase == "aborted":
            stack.restart_controlplane(DOWN_S, kill=True)
        rollout = stack.wait_state(rid, "aborted", timeout=30)
        return _end_state(stack, rollout, serving=before or "")
    rollout = stack.wait_state(rid, "completed", timeout=150)
    return _end_state(stack, rollout, serving=version)


@pytest.fixture(scope="module")
def fault_free(stack: FleetStack) -> dict[str, dict[str, Any]]:
    completed = _run(stack, phase=None, abort=False)
    aborted = _run(stack, phase=None, abort=True)
    ids = sorted(stack.fleet.device_ids)
    # what a fault-free run reaches, spelled out
    assert completed == {
        "state": "completed",
        "reason": f"all {COUNT} devices updated",
        "batches": ["done", "done", "done"],
        "devices": dict.fromkeys(ids, "activated"),
        "summary": {"activated": COUNT},
    }
    assert aborted["batches"] == ["done", "aborted", "skipped"], aborted
    assert aborted["devices"] == dict.fromkeys(ids[:3], "rolled_back") | dict.fromkeys(
        ids[3:], "skipped"
    )
    return {"completed": completed, "aborted": aborted}


@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.parametrize("phase", [*PHASES, "aborted"])
def test_kill_9_at_each_phase_ends_as_without_it(
    stack: FleetStack, fault_free: dict[str, dict[str, Any]], phase: str, attempt: int
) -> None:
    abort = phase == "aborted"
    ended = _run(stack, phase=phase, abort=abort)
    assert ended == fault_free["aborted" if abort else "completed"], (phase, attempt)
