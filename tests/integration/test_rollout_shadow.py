"""Rollouts with a shadow period, end to end: ``edgectl push --shadow ... --gate-agreement``
against a real control plane process, real Mosquitto and three simulated agents with
steady traffic (``tests.support.fleet``). The shadow period travels in the signed
command; each agent runs the new version beside the serving one on a copy of sampled
live requests and reports the figures.

1. a version with the same answers passes every device's shadow gate: the rollout
   completes, each device's shadow figures (100% agreement) are on the rollout and the
   device, and every batch sums them up;
2. a version with other weights disagrees on the canary: the device is regressed, the
   rollout pauses with the shadow gate's reason, the device still serves the old version,
   and ``rollouts show`` / ``devices show`` print the figures.

(The slower-model case is in ``test_agent_shadow.py``: a latency failure takes the same
path to the rollout as a disagreement: the reason names it.)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from tests.support.fleet import FleetStack, open_fleet
from tests.support.onnx_models import affine_model
from tests.support.operator_env import use_operator_env

pytestmark = pytest.mark.integration

COUNT = 3
#: a latency gate that passes on a busy 2-core box (only noise between the two)
SHADOW = ["--shadow", "1s", "--shadow-sample", "50%", "--gate-agreement", "99%"]
GATE = ["--gate-latency", "300%", "--gate-latency-floor", "50", "--gate-min-requests", "5"]


@pytest.fixture(scope="module")
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-shadow-"))
    try:
        with open_fleet(workdir, count=COUNT) as fleet:
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_operator_env(monkeypatch, tmp_path)


def _run(stack: FleetStack, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--url", stack.cp.url, *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return code, captured.out


def _push(
    stack: FleetStack, capsys: pytest.CaptureFixture[str], version: str, scale: float, *options: str
) -> dict[str, Any]:
    model = affine_model(stack.workdir / "src" / version / "det.onnx", scale=scale)
    argv = ["push", "model", str(model), "--name", "det", "--version", version]
    argv += ["--key", str(stack.kit.release_key), "--fleet", stack.fleet_name, *options]
    _, out = _run(stack, capsys, *argv, "--detach", "--json")
    rollout: dict[str, Any] = json.loads(out)["rollout"]
    return rollout


def test_a_version_that_agrees_completes_after_its_shadow_periods(
    stack: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _push(stack, capsys, "1.0.0", 1.0, "--no-gate")
    stack.wait_state(first["id"], "completed", timeout=120)
    stack.wait_versions(dict.fromkeys(stack.fleet.device_ids, "1.0.0"), "all on 1.0.0")

    created = _push(stack, capsys, "1.1.0", 1.0, *SHADOW, *GATE)
    assert created["strategy"]["shadow"] == {
        "duration_s": 1.0,
        "sample_pct": 50.0,
        "min_agreement_pct": 99.0,
    }
    rollout = stack.wait_state(created["id"], "completed", timeout=120)
    show = json.dumps(rollout, indent=1)
    assert rollout["counts"]["activated"] == COUNT, show
    for device in rollout["devices"]:
        shadow = device["shadow"]
        assert shadow is not None and shadow["verdict"] == "passed", show
        assert shadow["serving_version"] == "1.0.0" and shadow["agreement_pct"] == 100.0, show
        assert shadow["compared"] > 0 and shadow["max_deviation"] == 0.0, show
    assert [b["shadow"]["passed"] for b in rollout["batches"]] == [COUNT], show
    assert all(b["shadow"]["min_agreement_pct"] == 100.0 for b in rollout["batches"]), show
    stack.wait_versions(dict.fromkeys(stack.fleet.device_ids, "1.1.0"), "all on 1.1.0")


def test_a_version_that_disagrees_is_held_by_the_shadow_gate(
    stack: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    created = _push(stack, capsys, "1.2.0", 3.0, "--canary", "1", *SHADOW, *GATE)
    rollout = stack.wait_state(created["id"], "paused", timeout=120)
    show = json.dumps(rollout, indent=1)
    (canary,) = [d for d in rollout["devices"] if d["batch"] == 0]
    assert rollout["reason"].startswith(f"shadow gate: {canary['device_id']}: agreement 0%"), show
    assert canary["status"] == "regressed", show
    assert canary["shadow"]["verdict"] == "failed" and canary["shadow"]["max_deviation"] > 0.1, show
    assert rollout["batches"][0]["shadow"]["failed"] == 1, show
    assert rollout["counts"]["pending"] == COUNT - 1, show
    # the canary never switched; nobody else was sent the version
    stack.wait_versions(dict.fromkeys(stack.fleet.device_ids, "1.1.0"), "all still on 1.1.0")
    assert stack.events.devices_that_received("det", "1.2.0") == {canary["device_id"]}

    _, text = _run(stack, capsys, "rollouts", "show", str(created["id"]))
    assert "shadow periods:" in text and "batch 1: 0 passed, 1 failed" in text, text
    _, text = _run(stack, capsys, "devices", "show", canary["device_id"])
    assert "1.2.0 beside 1.1.0" in text and "shadow gate: agreement 0%" in text, text
    _run(stack, capsys, "rollouts", "abort", str(created["id"]))
