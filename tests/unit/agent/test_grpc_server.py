"""The gRPC server's status codes for failures past the tensor checks (a failing
backend, a pipeline step gone, a bug), over a real grpcio server on loopback; the
unknown-model and bad-tensor codes are in tests/integration/test_agent_grpc_api.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import grpc
import numpy as np
import pytest

from agent.errors import InferenceError, StepUnavailable
from agent.runners.base import Runner, TensorSignature
from agent.serving import LoadedModel, ServedModels, grpc_schema
from agent.serving.grpc_server import GrpcServer, InferenceService


class _Failing(Runner):
    """Takes one FP32 [1] input and raises ``error`` when run."""

    key: ClassVar[str] = "test-failing"

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.inputs = (TensorSignature("x", np.dtype(np.float32), (1,)),)
        self.outputs = (TensorSignature("y", np.dtype(np.float32), (1,)),)

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        pass

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise self.error

    def close(self) -> None:
        pass


@pytest.fixture
def call() -> Iterator[tuple[ServedModels, Any]]:
    models = ServedModels()
    server = GrpcServer(InferenceService(models, server_version="1"), "127.0.0.1", 0)
    messages = grpc_schema.messages()
    with grpc.insecure_channel(server.start()) as channel:
        infer = channel.unary_unary(
            f"/{grpc_schema.SERVICE_NAME}/ModelInfer",
            request_serializer=messages["ModelInferRequest"].SerializeToString,
            response_deserializer=messages["ModelInferResponse"].FromString,
        )

        def one(name: str) -> Any:
            request = messages["ModelInferRequest"](model_name=name)
            request.inputs.add(name="x", datatype="FP32", shape=[1])
            request.raw_input_contents.append(np.ones(1, np.float32).tobytes())
            return infer(request, timeout=10)

        try:
            yield models, one
        finally:
            server.stop()


@pytest.mark.parametrize(
    ("error", "code", "details"),
    [
        (
            InferenceError("backend failed: out of memory"),
            "INTERNAL",
            "backend failed: out of memory",
        ),
        (StepUnavailable("step head is not served"), "UNAVAILABLE", "step head is not served"),
        (RuntimeError("a bug\nwith a second line"), "INTERNAL", "internal error"),
    ],
)
def test_failures_are_one_line_statuses(
    call: tuple[ServedModels, Any], error: Exception, code: str, details: str
) -> None:
    models, infer = call
    models.activate(LoadedModel("m", "1", "0" * 64, Path("."), _Failing(error)))
    with pytest.raises(grpc.RpcError) as caught:
        infer("m")
    assert caught.value.code() == getattr(grpc.StatusCode, code)
    assert caught.value.details() == details
