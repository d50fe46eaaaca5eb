"""Agent end to end on loopback: real Mosquitto, real HTTP blob server, real signed
bundles and signed deployment commands, real Agent (MQTT link, deployment, ONNX Runtime,
OIP REST on the agent's own HTTP/1.1 server). The harness is ``tests.support.deploy``."""

from __future__ import annotations

import httpx
import pytest

from protocol import DeviceStatus, EventKind
from tests.support.deploy import (
    Setup,
    assert_served,
    det_inputs,
    oip_infer,
    ort_run,
    outputs_of,
    served_backend,
)
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


def test_deploy_serve_refuse_tampered_and_restart(setup: Setup) -> None:
    v1 = setup.bundle("det", "1.0.0", weight=0.5)
    a1 = setup.assignment(v1)
    setup.watcher.desire(1, a1)
    agent = setup.agent()
    agent.start()
    try:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        assert setup.watcher.kinds("1.0.0") == [
            EventKind.RECEIVED,
            EventKind.DOWNLOADED,
            EventKind.VERIFIED,
            EventKind.ACTIVATED,
        ]
        wait_until(
            lambda: (
                (s := setup.watcher.last_state()) is not None and s.status == DeviceStatus.ACTIVE
            ),
            10,
            "StateReport ACTIVE",
        )
        state = setup.watcher.last_state()
        assert (
            state is not None and state.generation == 1 and state.local_api == agent.local_api_url
        )
        assert [(m.name, m.version, m.bundle_digest) for m in state.active] == [
            ("det", "1.0.0", a1.bundle_digest)
        ]
        assert state.hardware == {"test": True}
        inputs = det_inputs(3)
        assert_served(agent, outputs_of(oip_infer(agent, "det", inputs)), ort_run(v1, inputs))
        assert_served(agent, agent.infer("det", inputs), ort_run(v1, inputs))
        assert httpx.get(f"{agent.local_api_url}/v2/health/ready").status_code == 200

        # v2 is signed, but its model bytes are tampered with on the server
        v2 = setup.bundle("det", "2.0.0", weight=3.0)
        a2 = setup.assignment(v2, deployment_id=2)
        model_ref = next(f for f in a2.files if f.path == "model.onnx")
        flipped = bytearray(setup.blobs.blobs[model_ref.sha256])
        flipped[len(flipped) // 2] ^= 0xFF
        setup.blobs.blobs[model_ref.sha256] = bytes(flipped)
        setup.watcher.desire(2, a2)
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("2.0.0"), 20, "FAILED")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED][-1]
        assert failed.reason and "model.onnx" in failed.reason
        wait_until(lambda: agent.last_error is not None, 10, "last_error set")
        assert agent.last_error is not None and "2.0.0" in agent.last_error
        assert agent.status == DeviceStatus.ACTIVE  # v1 still serves
        wait_until(
            lambda: (s := setup.watcher.last_state()) is not None and s.last_error is not None,
            10,
            "StateReport with last_error",
        )
        assert not (agent.config.data_dir / "staging" / a2.bundle_digest).exists()
        assert_served(agent, outputs_of(oip_infer(agent, "det", inputs)), ort_run(v1, inputs))

        # a malformed payload on the desired topic is counted and ignored
        setup.watcher.raw(b"{not json", retain=False)
        wait_until(lambda: agent.malformed_messages == 1, 10, "malformed counted")

        # and the agent keeps working: v3 (intact) activates
        v3 = setup.bundle("det", "3.0.0", weight=2.0)
        a3 = setup.assignment(v3, deployment_id=3)
        setup.watcher.desire(3, a3)
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("3.0.0"), 20, "v3 ACTIVATED")
        assert_served(agent, outputs_of(oip_infer(agent, "det", inputs)), ort_run(v3, inputs))
    finally:
        agent.stop()
    wait_until(lambda: setup.watcher.availability[-1:] == [False], 10, "offline published")

    # restart on the same data dir: serves the persisted model without downloading
    requests_before = len(setup.blobs.requests)
    restarted = setup.agent()
    restarted.start()
    try:
        assert [m.version for m in restarted.active] == ["3.0.0"]
        assert restarted.generation == 3
        assert_served(
            restarted, outputs_of(oip_infer(restarted, "det", inputs)), ort_run(v3, inputs)
        )
        assert restarted.wait_connected(10)
        wait_until(lambda: setup.watcher.availability[-1:] == [True], 10, "online again")
        assert len(setup.blobs.requests) == requests_before
    finally:
        restarted.stop()


def test_already_active_bundle_just_reports_and_oip_errors(setup: Setup) -> None:
    v1 = setup.bundle("det", "1.0.0")
    a1 = setup.assignment(v1)
    setup.watcher.desire(5, a1)
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        fetched = len(setup.blobs.requests)
        setup.watcher.desire(6, a1)
        wait_until(lambda: agent.generation == 6, 10, "generation 6")
        assert len(setup.blobs.requests) == fetched
        assert setup.watcher.kinds("1.0.0").count(EventKind.ACTIVATED) == 1

        base = agent.local_api_url
        meta = httpx.get(f"{base}/v2/models/det").json()
        platform = (
            "onnxruntime_onnx"
            if served_backend(agent, "det").startswith("onnxruntime:")
            else "openvino"
        )
        assert meta["platform"] == platform and meta["versions"] == ["1.0.0"]
        assert {"name": "x", "datatype": "FP32", "shape": [-1, 4]} in meta["inputs"]
        unknown = httpx.post(f"{base}/v2/models/nope/infer", json={"inputs": []})
        assert unknown.status_code == 404 and "error" in unknown.json()
        bad = httpx.post(
            f"{base}/v2/models/det/infer",
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]},
        )
        assert bad.status_code == 400 and "x" in bad.json()["error"]
