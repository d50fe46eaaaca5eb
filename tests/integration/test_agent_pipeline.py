"""A pipeline bundle on a real agent (issue 14, point 5; test 7.5): two models, ``embed``
(float32 + int64 in) then ``head`` (its float32 output + a bool pipeline input), served as
the one OIP model ``chain`` whose outputs equal running the two models by hand, also after
a restart (``chain`` sorts before its steps: the agent installs and restores pipelines
last); a pipeline whose step version the device does not serve is refused while the steps
serve on; a step that leaves the device makes the pipeline answer 503 naming it.

Real Mosquitto, a real HTTP blob server, real signed bundles and deployment commands
naming the whole set, inference over the real OIP REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from agent import Agent
from model_store import build_bundle, load_private_key, sign_bundle
from protocol import DeploymentEvent, EventKind, ModelAssignment
from tests.support.deploy import Setup, outputs_of
from tests.support.onnx_models import masked_head_model, two_input_model
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
PIN = {"pin": "onnxruntime:CPUExecutionProvider:f32"}
NAMES = ("embed", "head", "chain")
_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(bool): "BOOL"}


def _spec(head_version: str = "1.0.0") -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "dtype": "float32", "shape": ["batch", 4]},
            {"name": "ids", "dtype": "int64", "shape": ["batch"]},
            {"name": "mask", "dtype": "bool", "shape": ["batch", 3]},
        ],
        "steps": [
            {"name": "embed", "model": "embed", "version": "1.0.0",
             "inputs": {"x": "input/x", "ids": "input/ids"}},
            {"name": "head", "model": "head", "version": head_version,
             "inputs": {"features": "embed/y", "mask": "input/mask"}},
        ],
        "outputs": [
            {"name": "scores", "dtype": "float32", "shape": ["batch", 3], "from": "head/z"},
            {"name": "doubled", "dtype": "int64", "shape": ["batch"], "from": "embed/n"},
        ],
    }  # fmt: skip


def _signed(setup: Setup, source: Path, name: str, version: str, **build: Any) -> Path:
    out = setup.tmp / "bundles" / f"{name}-{version}-{source.name}"
    build_bundle(source, out, name=name, version=version, **build)
    sign_bundle(out, load_private_key(setup.kit.release_key))
    return out


def _pipeline(setup: Setup, version: str, spec: dict[str, Any]) -> Path:
    source = setup.tmp / f"pipe-{version}" / "chain.pipeline.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(spec))
    return _signed(setup, source, "chain", version)


def _steps(setup: Setup) -> tuple[Path, Path]:
    embed = two_input_model(setup.tmp / "src-embed" / "embed.onnx")
    head = masked_head_model(setup.tmp / "src-head" / "head.onnx")
    return (
        _signed(setup, embed, "embed", "1.0.0", selection=PIN),
        _signed(setup, head, "head", "1.0.0", selection=PIN),
    )


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "x": rng.standard_normal((4, 4)).astype(np.float32),
        "ids": np.array([1, 2, 30, 400], dtype=np.int64),
        "mask": rng.random((4, 3)) > 0.4,
    }


def _ort(model: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def _infer(agent: Agent, name: str, inputs: dict[str, np.ndarray]) -> httpx.Response:
    body = {
        "inputs": [
            {
                "name": key,
                "shape": list(value.shape),
                "datatype": _DATATYPES[value.dtype],
                "data": value.ravel().tolist(),
            }
            for key, value in inputs.items()
        ]
    }
    return httpx.post(f"{agent.local_api_url}/v2/models/{name}/infer", json=body, timeout=10)


def _triton_binary(agent: Agent, name: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The unmodified Triton client, every tensor binary both ways."""
    assert agent.local_api_url is not None
    client = triton.InferenceServerClient(agent.local_api_url.removeprefix("http://"))
    try:
        request = []
        for key, value in inputs.items():
            tensor = triton.InferInput(key, list(value.shape), _DATATYPES[value.dtype])
            tensor.set_data_from_numpy(value, binary_data=True)
            request.append(tensor)
        result = client.infer(name, request)
        return {o: result.as_numpy(o) for o in ("scores", "doubled")}
    finally:
        client.close()


def _event(setup: Setup, name: str, kind: EventKind) -> DeploymentEvent | None:
    with setup.watcher.lock:
        return next(
            (e for e in setup.watcher.events if e.model_name == name and e.kind == kind), None
        )


def _start(setup: Setup, *assignments: ModelAssignment) -> Agent:
    setup.watcher.desire(1, *assignments)
    agent = setup.agent()
    agent.start()
    return agent


def test_pipeline_of_two_models_equals_running_them_by_hand(setup: Setup) -> None:
    embed, head = _steps(setup)
    pipe = _pipeline(setup, "1.0", _spec())
    steps = [setup.assignment(embed), setup.assignment(head, deployment_id=2)]
    # listed first: the agent installs a pipeline after the models it runs
    agent = _start(setup, setup.assignment(pipe, deployment_id=3), *steps)
    try:
        wait_until(lambda: all(_event(setup, n, EventKind.ACTIVATED) for n in NAMES), 60, "up")
        assert _event(setup, "chain", EventKind.FAILED) is None
        assert {m.name: m.backend for m in agent.active}["chain"] == "pipeline"

        inputs = _inputs()
        got = outputs_of(_infer(agent, "chain", inputs))

        first = _ort(embed / "embed.onnx", {"x": inputs["x"], "ids": inputs["ids"]})
        second = _ort(head / "head.onnx", {"features": first["y"], "mask": inputs["mask"]})
        assert set(got) == {"scores", "doubled"}
        np.testing.assert_allclose(got["scores"], second["z"], rtol=1e-6)
        np.testing.assert_array_equal(got["doubled"], first["n"])
        # the step models answer on their own too, and the in-process API runs the pipeline
        by_api = outputs_of(_infer(agent, "embed", {"x": inputs["x"], "ids": inputs["ids"]}))
        np.testing.assert_allclose(by_api["y"], first["y"], rtol=1e-6)
        in_process = agent.infer("chain", inputs)
        np.testing.assert_allclose(in_process["scores"], second["z"], rtol=1e-6)
        binary = _triton_binary(agent, "chain", inputs)
        np.testing.assert_allclose(binary["scores"], second["z"], rtol=1e-6)
        np.testing.assert_array_equal(binary["doubled"], first["n"])
        metadata = httpx.get(f"{agent.local_api_url}/v2/models/chain", timeout=10).json()
        assert metadata["platform"] == "edgefleet_pipeline"
        assert [i["datatype"] for i in metadata["inputs"]] == ["FP32", "INT64", "BOOL"]

        # a restarted agent serves the pipeline again, over its restored steps
        agent.stop()
        agent = setup.agent()
        agent.start()  # restores the committed models before it returns, steps first
        assert {m.name for m in agent.active} == set(NAMES)
        again = outputs_of(_infer(agent, "chain", inputs))
        np.testing.assert_allclose(again["scores"], second["z"], rtol=1e-6)

        # a step leaves the device: the pipeline stays, its requests answer 503 naming it
        setup.watcher.desire(2, steps[0], setup.assignment(pipe, deployment_id=3))
        wait_until(lambda: "head" not in {m.name for m in agent.active}, 30, "head removed")
        response = _infer(agent, "chain", inputs)
        assert response.status_code == 503, response.text
        assert "step head needs model head 1.0.0" in response.json()["error"]
        # counted like any model: one success and one inference error on this agent
        metrics = httpx.get(f"{agent.local_api_url}/metrics", timeout=10).text
        chain = 'model="chain",version="1.0",backend="pipeline"'
        assert f"edgefleet_inference_requests_total{{{chain}}} 2" in metrics
        assert f'edgefleet_inference_errors_total{{{chain},kind="inference"}} 1' in metrics
    finally:
        agent.stop()


def test_pipeline_with_a_missing_step_version_is_refused_and_steps_serve_on(
    setup: Setup,
) -> None:
    embed, head = _steps(setup)
    pipe = _pipeline(setup, "2.0", _spec(head_version="9.9"))
    steps = [setup.assignment(embed), setup.assignment(head, deployment_id=2)]
    agent = _start(setup, *steps, setup.assignment(pipe, deployment_id=3))
    try:
        wait_until(lambda: _event(setup, "chain", EventKind.FAILED) is not None, 60, "refusal")
        failed = _event(setup, "chain", EventKind.FAILED)
        assert failed is not None and failed.reason is not None
        assert "pipeline chain 2.0: step head needs model head 9.9, which this device does not " \
            "serve (it serves head 1.0.0)" in failed.reason  # fmt: skip
        assert {m.name for m in agent.active} == {"embed", "head"}
        inputs = _inputs()
        assert _infer(agent, "chain", inputs).status_code == 404
        head_out = outputs_of(
            _infer(agent, "head", {"features": np.ones((4, 3), np.float32), "mask": inputs["mask"]})
        )
        np.testing.assert_allclose(head_out["z"], np.where(inputs["mask"], 2.0, 0.0))
    finally:
        agent.stop()
