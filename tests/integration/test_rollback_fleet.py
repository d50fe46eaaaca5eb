"""Issue 13's rollback and failed-push faults with real parts: a rollback sends each
device its own previous version, and a failed push of another model takes nothing down.

Seen before: rollout 2 put 1.1.0 on one device, rollout 3 (1.2.0, the whole fleet)
recorded "previous version 1.1.0", and rolling 3 back moved devices that had never run
1.1.0 onto it, all at once and ungated. Here, on Mosquitto, a control plane process and
3 simulated agents serving steady traffic (``tests.support.fleet``): the rollback of
rollout 3 puts 1.1.0 back on the one device that ran it and 1.0.0 on the others, none
of which ever hears of 1.1.0 (every deployment event the agents publish is watched on the
broker); it is gated like any rollout; afterwards there is nothing left to roll back.
A rollout that matches no device is refused (no false success). Then, with model A
serving everywhere, a push of model B that every device refuses leaves A serving, on the
agents' local APIs and as the control plane sees the devices.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fleet import FleetStack, open_fleet

pytestmark = pytest.mark.integration

COUNT = 3
GATE = {"latency_pct": 100.0, "latency_floor_ms": 25.0, "min_requests": 20}


@pytest.fixture
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-rollback-"))
    try:
        ring = {0: {"ring": "early"}}
        with open_fleet(workdir, count=COUNT, labels=lambda i: ring.get(i, {})) as fleet:
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _roll(stack: FleetStack, version: str, selector: dict[str, str] | None = None) -> int:
    """Push ``version`` and roll it out ungated (to ``selector``'s devices), completed."""
    stack.push(version)
    rid = int(stack.create_rollout(version, {"gate": {"enabled": False}}, selector)["id"])
    stack.wait_state(rid, "completed", timeout=120)
    return rid


def test_a_rollback_sends_each_device_its_own_previous_version_gated(
    stack: FleetStack,
) -> None:
    ids = sorted(stack.fleet.device_ids)
    early, rest = ids[0], ids[1:]
    assert stack.fleet.labels_of(early) == {"ring": "early"}
    _roll(stack, "1.0.0")
    stack.wait_versions(dict.fromkeys(ids, "1.0.0"), "all on 1.0.0")
    _roll(stack, "1.1.0", selector={"ring": "early"})
    stack.wait_versions({early: "1.1.0", **dict.fromkeys(rest, "1.0.0")}, "early on 1.1.0")
    third = _roll(stack, "1.2.0")
    stack.wait_versions(dict.fromkeys(ids, "1.2.0"), "all on 1.2.0")
    assert stack.rollout(third)["rollback_devices"] == COUNT

    answer = stack.http.post(
        f"/api/v1/rollouts/{third}/rollback", json={"strategy": {"gate": GATE}}
    )
    assert answer.status_code == 201, answer.text
    back = answer.json()
    assert back["strategy"]["gate"]["enabled"] is True  # gated like any rollout
    done = stack.wait_state(back["id"], "completed", timeout=150)
    assert all(d["status"] == "activated" for d in done["devices"]), json.dumps(done)
    assert all(d["observed"] and d["observed"]["requests"] > 0 for d in done["devices"])
    stack.wait_versions({early: "1.1.0", **dict.fromkeys(rest, "1.0.0")}, "own versions back")
    # no device that never ran 1.1.0 was ever sent it
    assert stack.events.devices_that_received(stack.model, "1.1.0") == {early}
    # nothing is left to roll back
    assert stack.rollout(third)["rollback_devices"] == 0
    again = stack.http.post(f"/api/v1/rollouts/{third}/rollback", json={})
    assert again.status_code == 409 and "nothing to roll back" in again.text

    # no false success: a rollout no device matches is refused, and nothing is recorded
    before = stack.http.get("/api/v1/rollouts").json()
    none = stack.http.post(
        "/api/v1/rollouts",
        json={
            "model": stack.model,
            "version": "1.2.0",
            "fleet": stack.fleet_name,
            "selector": {"hw": "nothing"},
        },
    )
    assert none.status_code == 409 and "no device" in none.text, none.text
    assert stack.http.get("/api/v1/rollouts").json() == before


def test_a_failed_push_of_another_model_takes_nothing_down(stack: FleetStack) -> None:
    """Issue 13, seen 6: every device served model A, a push of model B failed on every
    device, and the fleet went dark. Now A keeps serving, the devices stay active, and
    the rollout does not call itself a success."""
    ids = sorted(stack.fleet.device_ids)
    _roll(stack, "1.0.0")
    stack.wait_versions(dict.fromkeys(ids, "1.0.0"), "all on 1.0.0")
    # a model no host here can hold (1 TiB of RAM): it fails on every device
    stack.push("1.0.0", model="cls", constraints={"min_ram_bytes": 2**40})
    strategy = {"gate": {"enabled": False}}
    rid = stack.create_rollout("1.0.0", strategy, model="cls")["id"]
    ended = stack.wait_rollout(
        rid, lambda r: r["state"] in {"completed", "aborted"}, "the cls rollout to end", 120
    )
    assert "all 3 devices updated" not in (ended["reason"] or ""), json.dumps(ended)
    assert all(d["status"] == "failed" for d in ended["devices"]), json.dumps(ended)
    # it failed on the devices themselves: each got the command and reported its refusal
    assert stack.events.devices_that_received("cls", "1.0.0") == set(ids)
    assert stack.versions() == dict.fromkeys(ids, "1.0.0")  # what serves is untouched
    for agent in stack.fleet.agents:
        ready = httpx.get(f"{agent.local_api_url}/v2/models/{stack.model}/ready", timeout=5)
        assert ready.status_code == 200, (agent.device_id, ready.text)
    devices = stack.devices()
    assert {devices[d]["status"] for d in ids} == {"active"}, devices
