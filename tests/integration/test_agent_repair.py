"""A device with a verified model on disk always serves one (issue 13, point 3).

det 1.0.0 then 2.0.0 are deployed; the agent stops; one byte of the committed 2.0.0
model file is flipped on disk; the control plane goes down (nothing listens on its
port); a real ``edge-agent run`` process starts. It must serve the previous verified
version, 1.0.0, and say why (state report ``last_error`` and its log), while it tries to
repair 2.0.0; once the control plane is back on the same port, it re-downloads and
verifies 2.0.0 and switches back. Outputs are checked against a direct onnxruntime run.

A real Mosquitto, real HTTP blob servers, real signed bundles, ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from protocol import DeviceStatus, EventKind, StateReport
from tests.support.agent_process import AgentProcess
from tests.support.blobserver import BlobServer, assignment_for
from tests.support.deploy import (
    Setup,
    assert_close_to_reference,
    det_inputs,
    oip_infer,
    ort_run,
    outputs_of,
)
from tests.support.ports import free_port, wait_until

pytestmark = pytest.mark.integration


def _state_serving(setup: Setup, version: str) -> StateReport:
    """The newest state report, once it says det ``version`` serves."""

    def serving() -> StateReport | None:
        state = setup.watcher.last_state()
        ok = (
            state is not None
            and state.status == DeviceStatus.ACTIVE
            and [(m.name, m.version) for m in state.active] == [("det", version)]
            and state.local_api is not None
        )
        return state if ok else None

    wait_until(lambda: serving() is not None, 90, f"a state report with det {version} serving")
    state = serving()
    assert state is not None
    return state


def _check_outputs(state: StateReport, bundle: Path) -> None:
    """What the agent serves for det equals ONNX Runtime's run of ``bundle``."""
    assert state.local_api is not None
    inputs = det_inputs()
    response = oip_infer(state.local_api, "det", inputs)
    assert response.json()["model_version"] == state.active[0].version
    assert_close_to_reference(
        outputs_of(response), ort_run(bundle, inputs), state.active[0].backend
    )


def test_corrupt_committed_model_with_the_control_plane_down(setup: Setup) -> None:
    port = free_port()
    trust = setup.kit.trust_file.read_bytes()
    v1 = setup.bundle("det", "1.0.0", weight=0.5)
    v2 = setup.bundle("det", "2.0.0", weight=3.0)
    data_dir = setup.tmp / "device"
    with BlobServer(port) as plane:
        plane.serve_trust(trust)
        a1 = assignment_for(plane, v1)
        a2 = assignment_for(plane, v2, deployment_id=2)
        blobs = dict(plane.blobs)
        with setup.agent(data_dir, control_plane_url=plane.url):
            setup.watcher.desire(1, a1)
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "v1")
            setup.watcher.desire(2, a2)
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "v2")
        url = plane.url
    # the agent is stopped and the control plane is down: flip one byte of 2.0.0's model
    model_file = data_dir / "models" / a2.bundle_digest / "model.onnx"
    good = model_file.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01
    model_file.write_bytes(bytes(flipped))
    with setup.watcher.lock:
        setup.watcher.events.clear()
        setup.watcher.states.clear()

    config = setup.process_config(data_dir, control_plane_url=url)
    agent = AgentProcess(config, setup.tmp / "agent.log").start()
    try:
        # the previous verified version serves, and the device says why
        state = _state_serving(setup, "1.0.0")
        _check_outputs(state, v1)
        assert state.last_error is not None
        assert state.last_error.startswith("det 2.0.0: restore failed: ")
        assert "serving the previous verified version 1.0.0 until 2.0.0 is repaired" in (
            state.last_error
        )
        # the repair is tried and fails while the control plane is down; 1.0.0 serves on
        wait_until(
            lambda: EventKind.RETRYING in setup.watcher.kinds("2.0.0"),
            60,
            "a repair attempt of 2.0.0",
        )
        retrying = [e for e in setup.watcher.events if e.kind == EventKind.RETRYING][-1]
        assert retrying.reason is not None and "Connection refused" in retrying.reason
        assert "; retrying in " in retrying.reason
        state = _state_serving(setup, "1.0.0")
        _check_outputs(state, v1)
        assert state.last_error is not None and "serving the previous verified" in state.last_error
        log = (setup.tmp / "agent.log").read_text()
        assert "serving the previous verified version 1.0.0 until 2.0.0 is repaired" in log

        # the control plane comes back at the same address: 2.0.0 is repaired and serves
        with BlobServer(port) as back:
            back.serve_trust(trust)
            back.blobs.update(blobs)
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 90, "repair")
            state = _state_serving(setup, "2.0.0")
            wait_until(
                lambda: (s := setup.watcher.last_state()) is not None and s.last_error is None,
                30,
                "last_error cleared",
            )
            _check_outputs(_state_serving(setup, "2.0.0"), v2)
            # the agent retried by itself: never reported as failed
            assert EventKind.FAILED not in setup.watcher.kinds("2.0.0")
            assert model_file.read_bytes() == good  # verified bytes, downloaded again
            models = httpx.get(f"{state.local_api}/v2/models/det", timeout=10).json()
            assert models["versions"] == ["2.0.0"]
    except BaseException:
        print(agent.log_tail(80))
        raise
    finally:
        assert agent.stop() == 0
