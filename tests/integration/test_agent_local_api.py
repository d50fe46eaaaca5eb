"""The local inference API against real clients and under change: the unmodified Triton
client (``tritonclient[http]``) with binary and JSON tensors, graceful drain on
``stop()``, a hot swap while a slow request is in flight, and the agent's own wiring
(binary inference and /metrics on a deployed model, agent.toml's bounds). Slow and idle
clients: ``test_local_api_abuse.py``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as triton
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from agent.serving import ServedModels
from agent.serving.local_api import LocalApiServer, build_app
from protocol import EventKind
from tests.support.deploy import Setup
from tests.support.loaded import loaded_model
from tests.support.onnx_models import bool_input_model, two_input_model
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
HEADER = "Inference-Header-Content-Length"
SLOW_BATCH, WIDTH = 512, 1024


def slow_model(path: Path, *, matmuls: int = 48, scale: float = 1.0) -> Path:
    """y = x @ (scale * I)^matmuls, x float32 [batch, 1024]: ~0.4 s for a batch of 512
    on two cores (one shared weight, so the file stays small)."""
    nodes, prev = [], "x"
    for i in range(matmuls):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    weight = numpy_helper.from_array(np.eye(WIDTH, dtype=np.float32) * scale, "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])
    model = helper.make_model(
        helper.make_graph(nodes, "slow", [x], [y], [weight]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedModels, LocalApiServer, str]]:
    models = ServedModels()
    server = LocalApiServer(build_app(models, server_version="9.9"), "127.0.0.1", 0)
    url = server.start()
    try:
        yield models, server, url
    finally:
        server.stop()
        models.clear()


def _triton(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=30)


X = np.arange(8, dtype=np.float32).reshape(2, 4)
IDS = np.array([3, 4], dtype=np.int64)
Y = X @ (np.arange(12, dtype=np.float32).reshape(4, 3) * 0.5) + IDS[:, None].astype(np.float32)


def _inputs(*, x_binary: bool, ids_binary: bool) -> list[triton.InferInput]:
    x = triton.InferInput("x", list(X.shape), "FP32")
    x.set_data_from_numpy(X, binary_data=x_binary)
    ids = triton.InferInput("ids", list(IDS.shape), "INT64")
    ids.set_data_from_numpy(IDS, binary_data=ids_binary)
    return [x, ids]


def _post_in_background(
    url: str, body: bytes, headers: dict[str, str], answers: list[httpx.Response]
) -> threading.Thread:
    """POST the slow model's request from a thread; its response goes to ``answers``."""

    def slow_request() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            answers.append(client.post("/v2/models/slow/infer", content=body, headers=headers))

    request = threading.Thread(target=slow_request)
    request.start()
    return request


def test_tritonclient_works_unchanged(
    tmp_path: Path, served: tuple[ServedModels, LocalApiServer, str]
) -> None:
    models, _, url = served
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    models.activate(loaded_model(tmp_path, bool_input_model, "masked"))
    client = _triton(url)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("two") and client.is_model_ready("two", "1.2")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        assert client.get_model_metadata("two")["inputs"][0] == {
            "name": "x",
            "datatype": "FP32",
            "shape": [-1, 4],
        }

        # binary inputs, no outputs named: tritonclient asks for every output as binary
        result = client.infer("two", _inputs(x_binary=True, ids_binary=True), request_id="a")
        assert result.get_response()["id"] == "a"
        assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
        np.testing.assert_array_equal(result.as_numpy("y"), Y)
        assert result.as_numpy("n").tolist() == [6, 8]

        # JSON only, both ways
        outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("y", "n")]
        result = client.infer("two", _inputs(x_binary=False, ids_binary=False), outputs=outputs)
        assert all("data" in o for o in result.get_response()["outputs"])
        np.testing.assert_array_equal(result.as_numpy("y"), Y)

        # mixed: one binary input, one JSON; one binary output, one JSON; a version
        outputs = [
            triton.InferRequestedOutput("n", binary_data=False),
            triton.InferRequestedOutput("y", binary_data=True),
        ]
        result = client.infer(
            "two", _inputs(x_binary=True, ids_binary=False), outputs=outputs, model_version="1.2"
        )
        np.testing.assert_array_equal(result.as_numpy("y"), Y)
        assert result.as_numpy("n").tolist() == [6, 8]

        # BOOL as one byte per element
        x = triton.InferInput("x", [1, 2], "FP32")
        x.set_data_from_numpy(np.array([[1.5, 2.5]], np.float32))
        mask = triton.InferInput("mask", [1, 2], "BOOL")
        mask.set_data_from_numpy(np.array([[False, True]]))
        assert client.infer("masked", [x, mask]).as_numpy("y").tolist() == [[0.0, 2.5]]

        with pytest.raises(InferenceServerException, match="model 'nope' is not active"):
            client.infer("nope", _inputs(x_binary=True, ids_binary=True))
        wrong = triton.InferInput("x", [2, 4], "FP64")
        wrong.set_data_from_numpy(X.astype(np.float64))
        with pytest.raises(InferenceServerException, match="datatype FP64, expected FP32"):
            client.infer("two", [wrong, _inputs(x_binary=True, ids_binary=True)[1]])
    finally:
        client.close()


def _slow_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = (
        b'{"inputs":[{"name":"x","shape":[%d,%d],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}'
        % (x.shape[0], x.shape[1], x.nbytes)
    )
    return header + x.tobytes(), {HEADER: str(len(header))}


def _answer(response: httpx.Response) -> tuple[str, np.ndarray]:
    n = int(response.headers[HEADER])
    meta = httpx.Response(200, content=response.content[:n]).json()
    y = np.frombuffer(response.content[n:], np.float32).reshape(meta["outputs"][0]["shape"])
    return meta["model_version"], y


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_stop_finishes_in_flight_requests_and_refuses_new_ones(
    tmp_path: Path, served: tuple[ServedModels, LocalApiServer, str]
) -> None:
    models, server, url = served
    model = loaded_model(tmp_path, slow_model, "slow")
    # the request stays in flight until the test has seen new connections refused (the
    # runner is real; only its start waits for the test, so load cannot reorder the steps)
    release = threading.Event()
    real_infer = model.runner.infer

    def held_infer(inputs: Any) -> dict[str, np.ndarray]:
        release.wait(60)
        return real_infer(inputs)

    model.runner.infer = held_infer  # type: ignore[method-assign]
    models.activate(model)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as idle:  # keep-alive, idle
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")

        x = np.random.default_rng(0).standard_normal((SLOW_BATCH, WIDTH)).astype(np.float32)
        body, headers = _slow_body(x)
        answers: list[httpx.Response] = []
        request = _post_in_background(url, body, headers, answers)
        wait_until(lambda: model.in_flight == 1, 20, "the slow request in flight")
        stopper = threading.Thread(target=server.stop, args=(60,))
        stopper.start()
        try:
            wait_until(lambda: _refused(url), 10, "new connections refused", interval=0.01)
            assert request.is_alive() and stopper.is_alive()  # stop() waits for the request
        finally:
            release.set()
        stopper.join(60)
        request.join(5)
        assert not stopper.is_alive() and not request.is_alive()
        [response] = answers
        assert response.status_code == 200 and response.headers["connection"] == "close"
        version, y = _answer(response)
        assert version == "1.2"
        np.testing.assert_array_equal(y, x)
        assert idle.recv(4096) == b""  # the idle keep-alive connection was closed unanswered


def test_hot_swap_while_a_request_is_in_flight(
    tmp_path: Path, served: tuple[ServedModels, LocalApiServer, str]
) -> None:
    models, _, url = served
    old = loaded_model(tmp_path, slow_model, "slow", "1")
    models.activate(old)
    x = np.random.default_rng(1).standard_normal((SLOW_BATCH, WIDTH)).astype(np.float32)
    body, headers = _slow_body(x)
    answers: list[httpx.Response] = []
    request = _post_in_background(url, body, headers, answers)
    wait_until(lambda: old.in_flight == 1, 20, "the request in flight on version 1")
    doubled = loaded_model(tmp_path, lambda p: slow_model(p, matmuls=1, scale=2.0), "slow", "2")
    models.activate(doubled)  # version 2 serves from now on; version 1 finishes its request
    with httpx.Client(base_url=url, timeout=60) as client:
        version, y = _answer(client.post("/v2/models/slow/infer", content=body, headers=headers))
    assert version == "2"
    np.testing.assert_array_equal(y, x * 2)
    request.join(60)
    [response] = answers
    assert response.status_code == 200
    version, y = _answer(response)
    assert version == "1"  # wholly from the version it started on
    np.testing.assert_array_equal(y, x)


def test_the_agent_serves_binary_tensors_and_metrics(setup: Setup) -> None:
    v1 = setup.bundle("det", "1.0.0")
    setup.watcher.desire(1, setup.assignment(v1))
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        assert agent.local_api_url is not None
        client = _triton(agent.local_api_url)
        try:
            result = client.infer("det", _inputs(x_binary=True, ids_binary=True))
            assert result.as_numpy("n").tolist() == [6, 8]
        finally:
            client.close()
        metrics = httpx.get(f"{agent.local_api_url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'edgefleet_inference_requests_total{model="det",version="1.0.0"' in metrics.text


def test_agent_toml_bounds_the_local_api(setup: Setup) -> None:
    """``local_api_max_body_mb``, ``local_api_max_connections`` and
    ``local_api_request_timeout_s`` reach the server."""
    with setup.agent(
        local_api_max_body_mb=1, local_api_max_connections=2, local_api_request_timeout_s=1
    ) as agent:
        assert agent.local_api_url is not None
        url = f"{agent.local_api_url}/v2/models/det/infer"
        body = b"{" + b" " * (1024 * 1024) + b"}"  # one byte over 1 MiB
        big = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert big.status_code == 413, big.text
        host, port = agent.local_api_url.removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
        with socket.create_connection(address, timeout=5) as slow:
            slow.sendall(b"GET /v2/health/live HTTP/1.1\r\n")  # and never the rest
            assert slow.recv(4096).startswith(b"HTTP/1.1 408 ")  # after 1 s, not 10
        held = [socket.create_connection(address, timeout=10) for _ in range(2)]
        try:  # both slots held by idle connections: a new one takes the older's slot
            live = httpx.get(f"{agent.local_api_url}/v2/health/live", timeout=10)
            assert live.status_code == 200
            assert held[0].recv(4096) == b""  # closed unanswered
            held[1].sendall(b"GET /v2/health/live HTTP/1.1\r\n\r\n")
            assert held[1].recv(4096).startswith(b"HTTP/1.1 200 ")
        finally:
            for s in held:
                s.close()
