"""kill -9 at every lifecycle state: a real ``edge-agent run`` process, a real Mosquitto,
a real blob server, real signed bundles.

For each crash point the agent starts with ``EDGEFLEET_CRASH_AT`` set, SIGKILLs itself
there while deploying v2 over an active v1, and is started again without it. Afterwards
exactly one complete, verified version serves (checked through the local API: metadata
and the outputs of a real inference), the journal is settled, the control plane has been
told the outcome (event and state report), and the cache holds no half-staged bundle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from agent.deployment.lifecycle import State
from protocol import DeviceStatus, EventKind, ModelAssignment
from tests.support.agent_process import AgentProcess
from tests.support.deploy import Setup, assert_close_to_reference
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
#: a signed, valid bundle whose outputs are NaN: it must fail the health gate
NAN = float("nan")

#: every point of a good deployment where the agent can die: after the journal
#: persisted the state (before its side effect), and after the side effect
CRASH_POINTS = [
    *(
        point
        for state in (
            State.DOWNLOADING,
            State.VERIFYING,
            State.STAGING,
            State.SELECTING,
            State.WARMING_UP,
            State.ACTIVATING,
        )
        for point in (str(state), f"{state}:after")
    ),
    str(State.COMMITTED),
]

INPUTS = {
    "x": np.arange(8, dtype=np.float32).reshape(2, 4) / 10,
    "ids": np.array([3, 4], dtype=np.int64),
}


def _expected(bundle_dir: Path) -> np.ndarray:
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"))
    return np.asarray(session.run(["y"], INPUTS)[0])


def _infer_y(base: str) -> tuple[str, np.ndarray]:
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": INPUTS["x"].ravel().tolist(),
            },
            {"name": "ids", "shape": [2], "datatype": "INT64", "data": INPUTS["ids"].tolist()},
        ]
    }
    response = httpx.post(f"{base}/v2/models/det/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    answer = response.json()
    y = next(o for o in answer["outputs"] if o["name"] == "y")
    return answer["model_version"], np.asarray(y["data"], dtype=np.float32).reshape(y["shape"])


def _prepare_v1(setup: Setup) -> tuple[Path, Path, ModelAssignment]:
    """A data dir in which det 1.0.0 is committed; the v1 bundle dir and its assignment."""
    v1 = setup.bundle("det", "1.0.0", weight=0.5)
    a1 = setup.assignment(v1)
    template = setup.tmp / "template"
    setup.watcher.desire(1, a1)
    with setup.agent(template):
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "v1 active")
    return template, v1, a1


def _serving(setup: Setup, version: str) -> str:
    """Wait for a state report that says ``version`` serves; the local API URL."""

    def ok() -> bool:
        s = setup.watcher.last_state()
        return (
            s is not None
            and s.status == DeviceStatus.ACTIVE
            and [(m.name, m.version) for m in s.active] == [("det", version)]
            and s.local_api is not None
        )

    wait_until(ok, 60, f"a state report with det {version} active")
    state = setup.watcher.last_state()
    assert state is not None and state.local_api is not None
    return state.local_api


def _check_one_version_serves(setup: Setup, version: str, bundle_dir: Path) -> None:
    """Once a state report says ``version`` serves, its local API answers with it (like
    ONNX Runtime, within the accuracy guard if measured selection chose bf16)."""
    base = _serving(setup, version)
    state = setup.watcher.last_state()
    assert state is not None
    meta = httpx.get(f"{base}/v2/models/det", timeout=10).json()
    assert meta["versions"] == [version]
    served_version, y = _infer_y(base)
    assert served_version == version
    expected = {"y": _expected(bundle_dir)}
    assert_close_to_reference({"y": y}, expected, state.active[0].backend, rtol=1e-6, atol=0)


def _journal(data_dir: Path) -> dict[str, Any]:
    state = json.loads((data_dir / "state.json").read_text())
    return {e["assignment"]["name"]: e for e in state["journal"]} | {"_state": state}


def _crash_then_restart(
    setup: Setup, data_dir: Path, point: str, **extra: Any
) -> tuple[AgentProcess, AgentProcess]:
    config = setup.process_config(data_dir, **extra)
    crashing = AgentProcess(config, data_dir.parent / f"{data_dir.name}-1.log", crash_at=point)
    crashing.start()
    try:
        code = crashing.wait(90)
    except subprocess.TimeoutExpired:
        crashing.stop()
        pytest.fail(f"the agent did not reach {point}:\n{crashing.log_tail()}")
    assert code == -9, f"{point}: exit {code}\n{crashing.log_tail()}"
    restarted = AgentProcess(config, data_dir.parent / f"{data_dir.name}-2.log").start()
    return crashing, restarted


def test_kill_9_at_every_lifecycle_state_then_restart(setup: Setup) -> None:
    template, _, a1 = _prepare_v1(setup)
    v2 = setup.bundle("det", "2.0.0", weight=3.0)
    a2 = setup.assignment(v2, deployment_id=2)
    setup.watcher.desire(2, a2)
    for point in CRASH_POINTS:
        data_dir = setup.tmp / f"crash-{point.replace(':', '-')}"
        shutil.copytree(template, data_dir)
        with setup.watcher.lock:
            setup.watcher.events.clear()
            setup.watcher.states.clear()
        _, restarted = _crash_then_restart(setup, data_dir, point)
        try:
            wait_until(
                lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"),
                60,
                f"v2 ACTIVATED reported after a crash at {point}",
            )
            _check_one_version_serves(setup, "2.0.0", v2)
            journal = _journal(data_dir)
            assert journal["det"]["state"] == "committed", point
            assert journal["_state"]["generation"] == 2
            assert [m["version"] for m in journal["_state"]["models"]] == ["2.0.0"]
            assert [m["version"] for m in journal["_state"]["previous"]] == ["1.0.0"]
            assert (data_dir / "models" / a1.bundle_digest).is_dir()  # kept for rollback
            assert not (data_dir / "staging" / a2.bundle_digest).exists()
        except BaseException:
            print(restarted.log_tail())
            raise
        finally:
            assert restarted.stop() == 0


@pytest.mark.parametrize("point", [str(State.ROLLING_BACK), f"{State.ROLLING_BACK}:after"])
def test_kill_9_while_rolling_back_a_model_that_fails_the_gate(setup: Setup, point: str) -> None:
    template, v1, _ = _prepare_v1(setup)
    bad = setup.bundle("det", "2.0.0", weight=NAN)
    setup.watcher.desire(2, setup.assignment(bad, deployment_id=2))
    data_dir = setup.tmp / "data"
    shutil.copytree(template, data_dir)
    _, restarted = _crash_then_restart(setup, data_dir, point)
    try:
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("2.0.0"), 60, "v2 FAILED")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED][-1]
        assert failed.reason is not None and "not finite" in failed.reason
        assert "kept det 1.0.0" in failed.reason  # gated out before the switch
        _check_one_version_serves(setup, "1.0.0", v1)
        assert _journal(data_dir)["det"]["state"] == "failed"
    finally:
        assert restarted.stop() == 0


def test_crash_loop_marks_the_bundle_bad_until_a_new_generation(setup: Setup) -> None:
    template, v1, _ = _prepare_v1(setup)
    v2 = setup.bundle("det", "2.0.0", weight=3.0)
    a2 = setup.assignment(v2, deployment_id=2)
    setup.watcher.desire(2, a2)
    data_dir = setup.tmp / "data"
    shutil.copytree(template, data_dir)
    config = setup.process_config(data_dir, max_deploy_crashes=2)
    # the model "kills the runtime" while warming up, every time
    for attempt in (1, 2):
        proc = AgentProcess(config, setup.tmp / f"loop-{attempt}.log", crash_at="warming_up")
        assert proc.start().wait(90) == -9, proc.log_tail()
    # the second crash was the last one: the next start gives up on v2 and says why
    survivor = AgentProcess(config, setup.tmp / "loop-3.log", crash_at="warming_up").start()
    try:
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("2.0.0"), 60, "v2 FAILED")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED][-1]
        assert failed.reason is not None and "died 2 times" in failed.reason
        _check_one_version_serves(setup, "1.0.0", v1)
        state = _journal(data_dir)["_state"]
        assert [(b["bundle_digest"], b["generation"]) for b in state["bad"]] == [
            (a2.bundle_digest, 2)
        ]
        assert survivor.process is not None and survivor.process.poll() is None
    finally:
        assert survivor.stop() == 0
    # restarted again (hook still armed): v2 is not retried for generation 2
    with setup.watcher.lock:
        setup.watcher.states.clear()
    survivor = AgentProcess(config, setup.tmp / "loop-4.log", crash_at="warming_up").start()
    try:
        _check_one_version_serves(setup, "1.0.0", v1)
        assert survivor.process is not None and survivor.process.poll() is None
    finally:
        assert survivor.stop() == 0
    # a newer generation may try the same bundle again (here it works: no fault)
    with setup.watcher.lock:
        setup.watcher.events.clear()
        setup.watcher.states.clear()
    setup.watcher.desire(3, a2)
    fixed = AgentProcess(config, setup.tmp / "loop-5.log").start()
    try:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 60, "v2 ACTIVATED")
        _check_one_version_serves(setup, "2.0.0", v2)
    finally:
        assert fixed.stop() == 0


def test_a_clean_stop_mid_download_is_resumed_without_counting_a_crash(setup: Setup) -> None:
    v2 = setup.bundle("det", "2.0.0", weight=3.0)
    a2 = setup.assignment(v2)
    model_ref = next(f for f in a2.files if f.path == "model.onnx")
    setup.blobs.drip[model_ref.sha256] = 0.01  # ~100 bytes/s: still downloading at stop
    setup.watcher.desire(1, a2)
    data_dir = setup.tmp / "data"
    with setup.agent(data_dir):
        wait_until(lambda: EventKind.RECEIVED in setup.watcher.kinds("2.0.0"), 30, "received")
        wait_until(
            lambda: _journal(data_dir).get("det", {}).get("state") == "downloading", 30, "dl"
        )
    state = _journal(data_dir)
    assert state["_state"]["stopped_cleanly"] is True
    assert state["det"]["state"] == "downloading" and state["det"]["crashes"] == 0
    setup.blobs.drip.clear()
    with setup.agent(data_dir) as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "activated")
        assert [m.version for m in agent.active] == ["2.0.0"]
        assert _journal(data_dir)["det"]["crashes"] == 0


def test_a_committed_version_that_kills_every_start_is_dropped(setup: Setup) -> None:
    template, v1, _ = _prepare_v1(setup)
    v2 = setup.bundle("det", "2.0.0", weight=3.0)
    setup.watcher.desire(2, setup.assignment(v2, deployment_id=2))
    with setup.agent(template):
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "v2 active")
    config = setup.process_config(template, max_deploy_crashes=2)
    for attempt in (1, 2):  # v2 "kills the runtime" whenever a start loads it
        proc = AgentProcess(config, setup.tmp / f"boot-{attempt}.log", crash_at="restoring-2.0.0")
        assert proc.start().wait(90) == -9, proc.log_tail()
    with setup.watcher.lock:
        setup.watcher.states.clear()
    survivor = AgentProcess(config, setup.tmp / "boot-3.log", crash_at="restoring-2.0.0").start()
    try:
        _check_one_version_serves(setup, "1.0.0", v1)
        # the retained command (generation 2) is applied again and refused: told as FAILED
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("2.0.0"), 30, "v2 FAILED")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED][-1]
        assert failed.reason is not None
        assert "died 2 times in a row while loading it at start" in failed.reason
        saved = _journal(template)["_state"]
        assert [m["version"] for m in saved["models"]] == ["1.0.0"] and saved["restoring"] == {}
    finally:
        assert survivor.stop() == 0
