"""The local API over gRPC against the unmodified Triton client (``tritonclient[grpc]``):
health, metadata, inference with every datatype the REST path carries (dynamic shapes,
several inputs), typed ``contents`` as KServe clients send them, errors with their status
codes, and the agent's own wiring (``local_grpc``)."""

from __future__ import annotations

import functools
import queue
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from agent.errors import AgentError
from agent.serving import ServedModels
from agent.serving.grpc_server import GrpcServer, InferenceService
from protocol import EventKind
from tests.support.deploy import Setup, det_inputs, ort_run
from tests.support.loaded import loaded_model
from tests.support.onnx_models import EVERY_DTYPE, every_dtype_model, two_input_model
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedModels, triton.InferenceServerClient, str]]:
    models = ServedModels()
    server = GrpcServer(InferenceService(models, server_version="9.9"), "127.0.0.1", 0)
    address = server.start()
    client = triton.InferenceServerClient(address)
    try:
        yield models, client, address
    finally:
        client.close()
        server.stop()
        models.clear()


def _input(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _values(dtype: np.dtype[Any], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values spanning the dtype's range (its extremes included)."""
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        values.flat[:2] = [info.min, info.max][: values.size]
        return values
    values = (rng.standard_normal(shape) * 1e3).astype(dtype)
    values.flat[:3] = [np.finfo(dtype).max, -np.inf, np.nan][: values.size]
    return values


def _put(done: queue.Queue[Any], result: Any, error: Any) -> None:
    done.put((result, error))


def _error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert "\n" not in caught.value.message()
    return caught.value


def test_tritonclient_grpc_works_unchanged(
    tmp_path: Path, served: tuple[ServedModels, triton.InferenceServerClient, str]
) -> None:
    models, client, _ = served
    assert client.is_server_live() and not client.is_server_ready()  # nothing served yet
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    models.activate(loaded_model(tmp_path, every_dtype_model, "every"))
    assert client.is_server_ready()
    assert client.is_model_ready("two") and client.is_model_ready("two", "1.2")
    assert not client.is_model_ready("two", "7") and not client.is_model_ready("nope")
    meta = client.get_server_metadata(as_json=True)
    assert (meta["name"], meta["version"]) == ("edgefleet-agent", "9.9")
    model = client.get_model_metadata("two", as_json=True)
    assert model["versions"] == ["1.2"] and model["platform"] == "onnxruntime_onnx"
    assert model["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}

    # several inputs of different dtypes, an id, one output named, two batch sizes
    for batch in (1, 3):
        feeds = det_inputs(batch)
        expected = ort_run(models.get("two").bundle_dir, feeds)
        inputs = [_input("x", feeds["x"], "FP32"), _input("ids", feeds["ids"], "INT64")]
        result = client.infer("two", inputs, request_id=f"r{batch}")
        response = result.get_response()
        assert (response.id, response.model_version) == (f"r{batch}", "1.2")
        np.testing.assert_array_equal(result.as_numpy("y"), expected["y"])
        np.testing.assert_array_equal(result.as_numpy("n"), expected["n"])
        only_n = client.infer("two", inputs, outputs=[triton.InferRequestedOutput("n")])
        assert [o.name for o in only_n.get_response().outputs] == ["n"]
        done: queue.Queue[Any] = queue.Queue()  # async_infer (docs/agent.md: it works)
        client.async_infer("two", inputs, functools.partial(_put, done))
        result, error = done.get(timeout=10)
        assert error is None
        np.testing.assert_array_equal(result.as_numpy("y"), expected["y"])

    # every datatype, both dims dynamic (two shapes), values across each range
    rng = np.random.default_rng(3)
    for shape in ((2, 5), (1, 1)):
        arrays = {dt: _values(dtype, shape, rng) for dt, dtype in EVERY_DTYPE.items()}
        inputs = [_input(f"in_{dt.lower()}", a, dt) for dt, a in arrays.items()]
        result = client.infer("every", inputs)
        for datatype, array in arrays.items():
            got = result.as_numpy(f"out_{datatype.lower()}")
            assert got.dtype == array.dtype and got.shape == shape, datatype
            np.testing.assert_array_equal(got, array, err_msg=datatype)

    feeds = det_inputs(2)
    x, ids = _input("x", feeds["x"], "FP32"), _input("ids", feeds["ids"], "INT64")
    unknown = _error(lambda: client.infer("nope", [x, ids]))
    assert unknown.status() == "StatusCode.NOT_FOUND"
    assert unknown.message() == "model 'nope' is not active"
    version = _error(lambda: client.infer("two", [x, ids], model_version="7"))
    assert version.status() == "StatusCode.NOT_FOUND"
    wrong_as_fp64 = _input("x", feeds["x"].astype(np.float64), "FP64")
    wrong = _error(lambda: client.infer("two", [wrong_as_fp64, ids]))
    assert wrong.status() == "StatusCode.INVALID_ARGUMENT"
    assert wrong.message() == "input 'x': datatype FP64, expected FP32"
    shape = _error(
        lambda: client.infer("two", [_input("x", np.ones((2, 5), np.float32), "FP32"), ids])
    )
    assert shape.status() == "StatusCode.INVALID_ARGUMENT" and "'x'" in shape.message()
    missing = _error(lambda: client.infer("two", [x]))
    assert missing.status() == "StatusCode.INVALID_ARGUMENT"
    assert missing.message() == "missing input 'ids'"
    output = _error(
        lambda: client.infer("two", [x, ids], outputs=[triton.InferRequestedOutput("z")])
    )
    assert (
        output.status() == "StatusCode.INVALID_ARGUMENT"
        and "unknown output 'z'" in output.message()
    )
    meta_error = _error(lambda: client.get_model_metadata("nope"))
    assert meta_error.status() == "StatusCode.NOT_FOUND"


def test_typed_contents_as_kserve_clients_send_them(
    tmp_path: Path, served: tuple[ServedModels, triton.InferenceServerClient, str]
) -> None:
    """A request built on the published proto's generated stubs with typed ``contents``
    (no raw bytes), as KServe's clients may send it; outputs come back raw. (Every
    typed field's decoding: tests/unit/agent/test_oip_grpc.py.)"""
    models, _, address = served
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    feeds = det_inputs(3)
    message = service_pb2.ModelInferRequest(model_name="two", id="typed")
    x = message.inputs.add(name="x", datatype="FP32", shape=list(feeds["x"].shape))
    x.contents.fp32_contents.extend(feeds["x"].ravel().tolist())
    ids = message.inputs.add(name="ids", datatype="INT64", shape=list(feeds["ids"].shape))
    ids.contents.int64_contents.extend(feeds["ids"].tolist())
    expected = ort_run(models.get("two").bundle_dir, feeds)
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(message, timeout=10)
        assert response.id == "typed" and [o.name for o in response.outputs] == ["y", "n"]
        y, n = response.raw_output_contents
        assert list(response.outputs[0].shape) == [3, 3]
        np.testing.assert_array_equal(np.frombuffer(y, "<f4").reshape(3, 3), expected["y"])
        np.testing.assert_array_equal(np.frombuffer(n, "<i8"), expected["n"])

        ids.contents.ClearField("int64_contents")
        ids.contents.int_contents.extend([1, 2, 3])  # the INT32 field for an INT64 input
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(message, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == "input 'ids': int_contents given for INT64"


def test_the_agent_serves_grpc_beside_rest(setup: Setup) -> None:
    """An agent started from its config with ``local_grpc = "auto"`` serves the deployed
    model over gRPC too (on local_api's port + 1, or port 0 when REST's is 0); by default
    (``local_grpc = "off"``) it opens none."""
    v1 = setup.bundle("det", "1.0.0")
    setup.watcher.desire(1, setup.assignment(v1))
    with setup.agent(local_grpc="auto") as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        assert agent.local_grpc_address is not None
        client = triton.InferenceServerClient(agent.local_grpc_address)
        try:
            feeds = det_inputs(2)
            inputs = [_input("x", feeds["x"], "FP32"), _input("ids", feeds["ids"], "INT64")]
            result = client.infer("det", inputs)
            np.testing.assert_array_equal(result.as_numpy("n"), ort_run(v1, feeds)["n"])
        finally:
            client.close()
    with setup.agent() as agent:
        assert agent.local_api_url is not None and agent.local_grpc_address is None


def test_a_port_in_use_is_one_clear_error() -> None:
    """No silent sharing of a port (grpcio sets SO_REUSEPORT unless told not to)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = GrpcServer(InferenceService(ServedModels(), server_version="1"), "127.0.0.1", port)
        with pytest.raises(AgentError, match=f"^local gRPC API cannot bind 127.0.0.1:{port}$"):
            server.start()
