"""Issue 14 with real parts: many models per device.

Mosquitto, a control plane process and 3 simulated agents (``tests.support.fleet``):
three models are rolled out to the fleet and every device serves all three, each at its
own version; then two rollouts of different models run at once, one failing on every
device, while the other completes and the third model keeps serving; then one model is
undeployed (as a rollout) while the others serve on, and rolling the undeploy back puts
each device's own version of it back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgectl.cli import main
from tests.support.fleet import FleetStack, open_fleet

pytestmark = pytest.mark.integration

COUNT = 3
UNGATED = {"gate": {"enabled": False}}


@pytest.fixture
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-multimodel-"))
    try:
        with open_fleet(workdir, count=COUNT) as fleet:
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _ready(stack: FleetStack, model: str) -> dict[str, int]:
    """Per device, the local API's answer to ``model``'s readiness."""
    return {
        agent.device_id: httpx.get(
            f"{agent.local_api_url}/v2/models/{model}/ready", timeout=5
        ).status_code
        for agent in stack.fleet.agents
    }


def _ended(stack: FleetStack, rollout_id: int) -> dict[str, Any]:
    return stack.wait_rollout(
        rollout_id, lambda r: r["state"] in {"completed", "aborted"}, "the rollout to end", 150
    )


def test_three_models_roll_out_fail_and_leave_independently(
    stack: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = sorted(stack.fleet.device_ids)
    everywhere = dict.fromkeys(ids, 200)

    # three models, each at its own version, rolled out at the same time
    stack.push("1.0.0", model="det", scale=2.0)
    stack.push("2.0.0", model="cls", scale=3.0)
    stack.push("3.0.0", model="ocr", scale=4.0)
    started = [
        stack.create_rollout(version, UNGATED, model=model)["id"]
        for model, version in (("det", "1.0.0"), ("cls", "2.0.0"), ("ocr", "3.0.0"))
    ]
    for rid in started:
        done = stack.wait_state(rid, "completed", timeout=150)
        assert all(d["status"] == "activated" for d in done["devices"]), json.dumps(done)
    for model, version in (("det", "1.0.0"), ("cls", "2.0.0"), ("ocr", "3.0.0")):
        stack.wait_versions(dict.fromkeys(ids, version), f"{model} everywhere", model=model)
        assert _ready(stack, model) == everywhere
    # the operator sees every model of every device, each with its version and state
    for device in stack.devices().values():
        shown = [(m["name"], m["version"], m["state"]) for m in device["models"]]
        assert shown == [
            ("cls", "2.0.0", "active"),
            ("det", "1.0.0", "active"),
            ("ocr", "3.0.0", "active"),
        ], device["models"]
        assert device["memory"] is not None and device["memory"]["budget_bytes"] > 0

    # two rollouts at once: det 1.1.0 completes while cls 2.1.0 fails on every device
    stack.push("1.1.0", model="det", scale=2.5)
    stack.push("2.1.0", model="cls", constraints={"min_ram_bytes": 2**40})
    good = stack.create_rollout("1.1.0", UNGATED, model="det")["id"]
    bad = stack.create_rollout("2.1.0", UNGATED, model="cls")["id"]
    done = stack.wait_state(good, "completed", timeout=150)
    assert all(d["status"] == "activated" for d in done["devices"]), json.dumps(done)
    assert done["counts"]["failed"] == 0, json.dumps(done)
    failed = _ended(stack, bad)
    assert all(d["status"] in {"failed", "rolled_back"} for d in failed["devices"]), failed
    assert stack.events.devices_that_received("cls", "2.1.0") == set(ids)
    stack.wait_versions(dict.fromkeys(ids, "1.1.0"), "det updated", model="det")
    stack.wait_versions(dict.fromkeys(ids, "2.0.0"), "cls untouched", model="cls")
    stack.wait_versions(dict.fromkeys(ids, "3.0.0"), "ocr untouched", model="ocr")
    for model in ("det", "cls", "ocr"):
        assert _ready(stack, model) == everywhere, model
    # the failure of cls is cls's own: the det rollout's devices show none
    assert stack.rollout(good)["counts"]["failed"] == 0

    # undeploy ocr on purpose, as a rollout (edgectl, as an operator runs it): it leaves,
    # the others serve on
    argv = ["--url", stack.cp.url, "--token", stack.cp.token, "models", "undeploy", "ocr"]
    code = main([*argv, "--fleet", stack.fleet_name, "--batches", "2", "--json"])
    assert code == 0, capsys.readouterr()
    undeploy = json.loads(capsys.readouterr().out)
    assert undeploy["undeploy"] is True and undeploy["state"] == "completed", undeploy
    assert all(d["status"] == "activated" for d in undeploy["devices"]), json.dumps(undeploy)
    assert len(undeploy["batches"]) == 2
    stack.wait_versions(dict.fromkeys(ids, None), "ocr removed", model="ocr")
    assert _ready(stack, "ocr") == dict.fromkeys(ids, 404)
    assert _ready(stack, "det") == everywhere and _ready(stack, "cls") == everywhere

    # rolling the undeploy back puts each device's own version of ocr back
    back = stack.http.post(f"/api/v1/rollouts/{undeploy['id']}/rollback", json=UNGATED_BODY)
    assert back.status_code == 201, back.text
    stack.wait_state(back.json()["id"], "completed", timeout=150)
    stack.wait_versions(dict.fromkeys(ids, "3.0.0"), "ocr back", model="ocr")
    stack.wait_versions(dict.fromkeys(ids, "1.1.0"), "det still updated", model="det")
    assert _ready(stack, "ocr") == everywhere


UNGATED_BODY = {"strategy": UNGATED}
