"""``edgectl`` against a real control plane process, real Mosquitto and four simulated
agents with steady traffic (``tests.support.fleet``): push with a canary and the live
view to completion, ``rollouts show|list|pause|resume|abort``, ``rollback``, device
labels and selectors, ``models list|show``, and errors as one line with their exit codes.

The CLI runs in-process (``edgectl.cli.main``) with ``EDGECTL_TOKEN`` set, as an operator
would run it; the tests run in order over one fleet.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from tests.support.fleet import FleetStack, open_fleet
from tests.support.onnx_models import affine_model
from tests.support.operator_env import use_operator_env
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

COUNT = 4
#: a gate that passes on a busy 2-core box (the same model, only noise between versions)
GATE = ["--gate-latency", "300%", "--gate-latency-floor", "25", "--gate-min-requests", "5"]


@pytest.fixture(scope="module")
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-edgectl-"))
    try:
        with open_fleet(
            workdir, count=COUNT, labels=lambda i: {"region": "eu" if i % 2 else "us"}
        ) as fleet:
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_operator_env(monkeypatch, tmp_path)


def _run(stack: FleetStack, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--url", stack.cp.url, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(stack: FleetStack, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(stack, capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _push(stack: FleetStack, version: str, scale: float, *options: str) -> list[str]:
    model = affine_model(stack.workdir / "src" / version / "det.onnx", scale=scale)
    key = ["--key", str(stack.kit.release_key)]
    return ["push", "model", str(model), "--name", "det", "--version", version, *key, *options]


def _one_line_error(err: str) -> str:
    line = err.strip()
    assert line.startswith("edgectl: error: ") and "\n" not in line, err
    return line


def test_push_with_a_canary_runs_the_rollout_to_completion(
    stack: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = ["--fleet", stack.fleet_name, "--canary", "1", "--batches", "2", *GATE]
    out = _json(stack, capsys, *_push(stack, "1.0.0", 1.0), *fleet, "--timeout", "3m")
    rollout = out["rollout"]
    assert out["version"]["version"] == "1.0.0"
    assert rollout["state"] == "completed", json.dumps(rollout, indent=1)
    assert rollout["counts"]["activated"] == COUNT
    assert [b["size"] for b in rollout["batches"]] == [1, 2, 1]
    assert rollout["strategy"]["canary"] == 1 and rollout["strategy"]["gate"]["min_requests"] == 5
    stack.wait_versions(dict.fromkeys(stack.fleet.device_ids, "1.0.0"), "all on 1.0.0")

    # the same for a human, piped: upload line, the view's changes, the closing line
    code, text, err = _run(stack, capsys, *_push(stack, "1.1.0", 2.0), *fleet)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].startswith("det 1.1.0: bundle ") and lines[0].endswith("signed and uploaded")
    assert lines[1] == f"rollout 2: det 1.1.0 to fleet {stack.fleet_name}"
    assert "canary batch 1: 1 device, 1 active, 0 failed, 0 pending [done]" in lines
    assert "batch 2: 2 devices, 2 active, 0 failed, 0 pending [done]" in lines
    assert "batch 3: 1 device, 1 active, 0 failed, 0 pending [done]" in lines
    assert lines[-1].startswith("rollout 2 completed")
    assert "\x1b" not in text and "uploading" not in err  # no TTY: no redraws, no bar

    shown = _json(stack, capsys, "rollouts", "show", "2")
    assert shown["state"] == "completed" and shown["previous_version"] == "1.0.0"
    assert {d["status"] for d in shown["devices"]} == {"activated"}
    assert all(d["baseline"] and d["observed"] for d in shown["devices"])
    code, text, _ = _run(stack, capsys, "rollouts", "show", "2")
    assert code == 0 and "history:" in text and "ACTIVATED" not in text
    assert all(device in text for device in stack.fleet.device_ids)
    listed = _json(stack, capsys, "rollouts", "list", "--state", "completed")
    assert [r["id"] for r in listed] == [1, 2]
    code, text, _ = _run(stack, capsys, "rollouts", "list", "--fleet", stack.fleet_name)
    assert code == 0 and text.splitlines()[0].split()[:6] == [
        "ID", "MODEL", "VERSION", "FLEET", "SELECTOR", "STATE"
    ]  # fmt: skip


def test_pause_resume_abort_and_rollback(
    stack: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--fleet", stack.fleet_name, "--canary", "1", "--wait", "1h", *GATE]
    created = _json(stack, capsys, *_push(stack, "1.2.0", 3.0), *options, "--detach")
    rid = created["rollout"]["id"]
    assert created["rollout"]["state"] == "running"

    # Ctrl-C stops watching, not the rollout: exit 130 and how to look at it again
    argv = ["--url", stack.cp.url, "rollouts", "show", str(rid), "--watch"]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "edgectl.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    assert watcher.stdout.readline().startswith(f"rollout {rid}: det 1.2.0")
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130
    # one line; while the gate waits for traffic it says so, and how to wait less
    assert "\n" not in err.strip()
    line, _, waiting = err.strip().partition("; ")
    assert line == f"rollout {rid} continues on the control plane: edgectl rollouts show {rid}"
    assert not waiting or waiting.startswith("gate: waiting for traffic: "), err
    assert stack.rollout(rid)["state"] == "running"

    code, out, err = _run(stack, capsys, "rollouts", "pause", str(rid), "--reason", "lunch")
    assert code == 0, err
    assert out.strip().endswith("[paused: lunch]")
    # watching a paused rollout: exit 4, one line saying how to go on
    code, _, err = _run(stack, capsys, "rollouts", "show", str(rid), "--watch")
    assert code == 4 and f"edgectl rollouts resume {rid}" in _one_line_error(err)
    # a second pause is refused by the control plane: one line, exit 1
    code, _, err = _run(stack, capsys, "rollouts", "pause", str(rid))
    line = _one_line_error(err)
    assert code == 1 and f"control plane refused POST /api/v1/rollouts/{rid}/pause (409)" in line

    assert _json(stack, capsys, "rollouts", "resume", str(rid))["state"] == "running"
    aborted = _json(stack, capsys, "rollouts", "abort", str(rid), "--reason", "enough")
    assert aborted["state"] == "aborted"
    code, _, err = _run(stack, capsys, "rollouts", "show", str(rid), "--watch", "--json")
    assert code == 1 and f"rollout {rid} aborted" in _one_line_error(err)

    back = _json(stack, capsys, "rollback", "2", "--detach")
    assert back["rollback_of"] == 2 and back["version"] == "1.0.0"
    assert back["strategy"]["canary"] is None


def test_labels_and_selectors(stack: FleetStack, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = stack.fleet.device_ids[:2]
    code, out, err = _run(stack, capsys, "devices", "label", first, "tier=gold", "region-")
    assert code == 0, err
    hw = stack.devices()[first]["labels"]["hw"]  # set from the profile the device reports
    assert out.strip() == f"{first}: hw={hw},tier=gold"
    gold = _json(stack, capsys, "devices", "list", "--selector", "tier=gold")
    assert [d["id"] for d in gold] == [first]
    eu = _json(stack, capsys, "devices", "list", "--selector", "region=eu")
    assert second in {d["id"] for d in eu} and first not in {d["id"] for d in eu}
    code, text, _ = _run(stack, capsys, "devices", "list", "--fleet", stack.fleet_name)
    assert code == 0 and "tier=gold" in text and len(text.splitlines()) == COUNT + 1

    code, text, _ = _run(stack, capsys, "devices", "show", first)
    assert code == 0
    assert "labels:" in text and "tier=gold" in text and "runtimes:" in text
    assert "REQUESTS" in text  # per-model figures from the last heartbeat
    assert _json(stack, capsys, "devices", "show", first)["labels"] == {"hw": hw, "tier": "gold"}

    code, _, err = _run(stack, capsys, "devices", "label", "ghost", "a=b")
    assert code == 1 and "(404)" in _one_line_error(err)


def test_models_list_and_show(stack: FleetStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = _run(stack, capsys, "models", "list")
    assert code == 0 and text.splitlines()[1].split()[:3] == ["det", "3", "1.2.0"]
    code, text, _ = _run(stack, capsys, "models", "show", "det")
    rows = text.splitlines()
    assert code == 0 and rows[0] == "model det"
    assert [r.split()[0] for r in rows[2:]] == ["1.0.0", "1.1.0", "1.2.0"]
    assert "default (onnx)" in rows[2]
    shown = _json(stack, capsys, "models", "show", "det")
    assert [v["version"] for v in shown["versions"]] == ["1.0.0", "1.1.0", "1.2.0"]
    code, _, err = _run(stack, capsys, "models", "show", "nope")
    assert code == 1 and "unknown model 'nope'" in _one_line_error(err)


def test_tokens_and_reachability(stack: FleetStack, capsys: pytest.CaptureFixture[str]) -> None:
    viewer = _json(stack, capsys, "tokens", "create", "--name", "ci", "--role", "viewer")
    capsys.readouterr()
    code = main(["--url", stack.cp.url, "--token", viewer["token"], "rollouts", "pause", "2"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 1 and "(403)" in line and "role viewer may not POST" in line
    assert main(["--url", stack.cp.url, "--token", viewer["token"], "rollouts", "list"]) == 0

    capsys.readouterr()
    assert main(["--url", f"http://127.0.0.1:{free_port()}", "rollouts", "list"]) == 3
    assert "cannot reach the control plane" in _one_line_error(capsys.readouterr().err)


def test_no_false_success(stack: FleetStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13.7: a selector matching no device is refused (exit 1, one line); a strategy
    that cannot be followed as asked says so in the live view."""
    for running in stack.http.get("/api/v1/rollouts", params={"state": "running"}).json():
        stack.wait_state(running["id"], "completed", timeout=120)  # the rollback test's
    fleet = ["--fleet", stack.fleet_name]
    code, _, err = _run(stack, capsys, *_push(stack, "1.9.0", 4.0, *fleet, "--selector", "hw=no"))
    assert code == 1
    assert _one_line_error(err).endswith(
        f"(409): no device of fleet {stack.fleet_name} matches hw=no: nothing to roll out "
        "(det 1.9.0 is uploaded and registered: push it again once that is resolved, "
        "nothing is uploaded twice)"
    )
    assert stack.http.get("/api/v1/rollouts", params={"state": "running"}).json() == []

    code, _, err = _run(stack, capsys, "devices", "label", stack.fleet.device_ids[0], "ring=solo")
    assert code == 0, err
    options = [*fleet, "--selector", "ring=solo", "--canary", "2", "--batches", "3", "--no-gate"]
    code, out, err = _run(stack, capsys, *_push(stack, "1.9.1", 4.5, *options))
    assert code == 0, err
    assert "strategy adjusted: canary of 2 asked, 1 device match: the canary is that one" in out
    assert "strategy adjusted: 3 batches asked, no device left after the canary: none run" in out
    assert out.rstrip().endswith("completed: 1 device updated"), out
