"""The gRPC server's status codes for failures past the tensor checks (a failing
backend, a pipeline step gone, a bug), over a real grpcio server on loopback; the
unknown-model and bad-tensor codes are in tests/integration/test_agent_grpc_api.py."""

from __future__ import annotations

import logging
import threading
import time
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
from agent.serving.http_wire import Limits


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


def _server(limits: Limits | None = None) -> GrpcServer:
    return GrpcServer(
        InferenceService(ServedModels(), server_version="1"), "127.0.0.1", 0, limits=limits
    )


@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff\xff", b"\x0a\x02\xff\xfe"],  # not protobuf; a model_name not UTF-8
    ids=["garbage", "not-utf8"],
)
def test_a_message_that_does_not_parse_is_invalid_argument_without_traceback(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server = _server()
    with grpc.insecure_channel(server.start()) as channel:
        infer = channel.unary_unary(f"/{grpc_schema.SERVICE_NAME}/ModelInfer")
        try:
            with pytest.raises(grpc.RpcError) as caught:
                infer(data, timeout=10)
        finally:
            server.stop()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "bad ModelInfer request: not a valid protobuf message"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_body_limit_beyond_grpcs_own_is_capped_not_a_crash() -> None:
    """local_api_max_body_mb may be up to 4096; gRPC's message lengths are C ints."""
    server = _server(Limits(max_body_bytes=4096 * 2**20))
    try:
        with grpc.insecure_channel(server.start()) as channel:
            live = channel.unary_unary(f"/{grpc_schema.SERVICE_NAME}/ServerLive")
            assert live(b"", timeout=10) == b"\x08\x01"  # live: true
    finally:
        server.stop()


def _never(release: threading.Event) -> Iterator[bytes]:
    """A request stream that sends nothing until ``release`` (the call's headers only)."""
    release.wait(30)
    yield from ()


@pytest.mark.parametrize(
    ("held", "max_calls", "code"),
    [(8, 64, None), (4, 4, grpc.StatusCode.RESOURCE_EXHAUSTED)],
    ids=["answered", "refused-at-once"],
)
def test_calls_whose_message_never_comes_hold_up_no_other_call(
    held: int, max_calls: int, code: grpc.StatusCode | None
) -> None:
    """Calls that send their headers but not their message hold a thread each: another
    call is still answered, and once all max_connections are held one is refused at once
    (RESOURCE_EXHAUSTED), never left waiting."""
    server = _server(Limits(max_connections=max_calls))
    address = server.start()
    release = threading.Event()
    channels = [grpc.insecure_channel(address) for _ in range(held)]
    stalled = [
        c.stream_unary(f"/{grpc_schema.SERVICE_NAME}/ModelInfer").future(_never(release))
        for c in channels
    ]
    try:
        time.sleep(0.5)  # the stalled calls have reached the server
        with grpc.insecure_channel(address) as channel:
            live = channel.unary_unary(f"/{grpc_schema.SERVICE_NAME}/ServerLive")
            if code is None:
                assert live(b"", timeout=3) == b"\x08\x01"
            else:
                with pytest.raises(grpc.RpcError) as caught:
                    live(b"", timeout=3)
                assert caught.value.code() == code
    finally:
        release.set()
        for call in stalled:
            call.cancel()
        for c in channels:
            c.close()
        server.stop()


def test_a_message_over_the_limit_is_resource_exhausted_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = _server(Limits(max_body_bytes=1024))
    with grpc.insecure_channel(server.start()) as channel:
        infer = channel.unary_unary(f"/{grpc_schema.SERVICE_NAME}/ModelInfer")
        try:
            with pytest.raises(grpc.RpcError) as caught:
                infer(b"\x0a\x80\x10" + b"m" * 2048, timeout=10)  # model_name: 2 KiB
        finally:
            server.stop()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def _live_within(live: Any, seconds: float) -> bytes:
    """``ServerLive``'s answer once the server has a free slot, within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return bytes(live(b"", timeout=3))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_call_whose_message_does_not_come_in_time_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As REST's request_timeout_s: a call that sent its headers but not its message is
    cancelled once the limit passes, and its slot is free for the next call."""
    server = _server(Limits(max_connections=1, request_timeout_s=0.3))
    address = server.start()
    release = threading.Event()
    try:
        with grpc.insecure_channel(address) as stalled_channel:
            start = time.monotonic()
            stalled = stalled_channel.stream_unary(
                f"/{grpc_schema.SERVICE_NAME}/ModelInfer"
            ).future(_never(release))
            with pytest.raises(grpc.RpcError) as caught:
                stalled.result(timeout=5)
            assert caught.value.code() == grpc.StatusCode.CANCELLED
            assert time.monotonic() - start < 3
            with grpc.insecure_channel(address) as channel:
                live = channel.unary_unary(f"/{grpc_schema.SERVICE_NAME}/ServerLive")
                # the slot comes free once the cancelled call's handler has returned,
                # which a loaded box may take a moment to run (seen failing under a CI run)
                assert _live_within(live, 3.0) == b"\x08\x01"
                none = channel.stream_unary(f"/{grpc_schema.SERVICE_NAME}/ModelInfer")
                with pytest.raises(grpc.RpcError) as empty:
                    none(iter(()), timeout=3)  # no message at all
                assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert empty.value.details() == "bad ModelInfer request: no request message"
    finally:
        release.set()
        server.stop()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
