"""The local inference API over gRPC: KServe v2 ``inference.GRPCInferenceService`` on loopback.

Beside the REST server (``agent.serving.local_api``), on the same models and through the
same checks (``agent.serving.oip_service``, ``agent.serving.oip``), so Triton's
``tritonclient.grpc`` and KServe's gRPC clients work unchanged: ServerLive, ServerReady,
ModelReady, ServerMetadata, ModelMetadata and ModelInfer (the messages:
``agent.serving.grpc_schema``; tensors: ``agent.serving.oip_grpc``).

Errors are gRPC statuses with a one-line detail, never a traceback: NOT_FOUND for an
unknown model or version, INVALID_ARGUMENT for a bad request or tensor, UNAVAILABLE
when the model's fair share is full or a pipeline step is not served (REST's 503),
INTERNAL when the backend fails (and for an unexpected error, logged in one line).
ModelReady answers ``ready: false`` for a model that is not served (Triton does the
same). Inference runs on the cores of its model's fair share, holding one of its slots
from decoding to encoding, as on the REST path.

The server is grpcio's: at most ``max_connections`` calls at once, each on a thread of
its own (so calls whose message is slow to come hold their own thread, never one that
another call waits for), more are refused with RESOURCE_EXHAUSTED by grpcio. The largest
request is the REST path's largest body, capped at gRPC's own limit (2 GiB - 1). Requests
that do not parse are INVALID_ARGUMENT in one line (a deserializer that raises would have
grpcio log a traceback and answer INTERNAL). A call whose message has not come
``request_timeout_s`` after it began is cancelled (``agent.serving.grpc_arrival``; grpcio
sets no such limit), as REST bounds a request still arriving. This module imports
grpcio and protobuf: the agent imports it only when it starts a gRPC server
(``AgentConfig.local_grpc``), so an agent without one never loads them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from agent.errors import AgentError, InvalidInput, ModelNotFound, StepUnavailable
from agent.serving import grpc_schema, oip, oip_grpc, oip_service
from agent.serving.fairshare import Overloaded
from agent.serving.grpc_arrival import ArrivalWatch
from agent.serving.http_wire import Limits
from agent.serving.models import LoadedModel, ServedModels

logger = logging.getLogger(__name__)

#: the largest message gRPC can carry (its lengths are C ints)
MAX_MESSAGE_BYTES = 2**31 - 1
#: what ``_deserializer`` hands the handler for bytes that do not parse
_UNPARSED = object()
_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (StepUnavailable, grpc.StatusCode.UNAVAILABLE),
    (Overloaded, grpc.StatusCode.UNAVAILABLE),
    (AgentError, grpc.StatusCode.INTERNAL),
)


class InferenceService:
    """The six rpcs over ``models``: each takes a request message, returns a response."""

    def __init__(self, models: ServedModels, *, server_version: str) -> None:
        self._models = models
        self._server_version = server_version
        self._messages = grpc_schema.messages()

    def _new(self, message: str, /, **fields: Any) -> Any:
        return self._messages[message](**fields)

    def ServerLive(self, request: Any) -> Any:
        return self._new("ServerLiveResponse", live=True)

    def ServerReady(self, request: Any) -> Any:
        return self._new("ServerReadyResponse", ready=len(self._models) > 0)

    def ModelReady(self, request: Any) -> Any:
        ready = oip_service.model_ready(self._models, request.name, request.version or None)
        return self._new("ModelReadyResponse", ready=ready)

    def ServerMetadata(self, request: Any) -> Any:
        return self._new(
            "ServerMetadataResponse", name=oip_service.SERVER_NAME, version=self._server_version
        )

    def ModelMetadata(self, request: Any) -> Any:
        meta = oip_service.model_metadata(self._models, request.name, request.version or None)
        response = self._new(
            "ModelMetadataResponse",
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
        )
        for key in ("inputs", "outputs"):
            for tensor in meta[key]:
                getattr(response, key).add(**tensor)
        return response

    def ModelInfer(self, request: Any) -> Any:
        name, version = request.model_name, request.model_version or None
        with self._models.placed(name), self._models.admitted(name):
            return oip_service.infer(self._models, name, version, _decoder(request), self._encode)

    def _encode(
        self, model: LoadedModel, request: oip.InferenceRequest, outputs: dict[str, np.ndarray]
    ) -> Any:
        return oip_grpc.encode(
            self._new("ModelInferResponse"),
            model_name=model.name,
            model_version=model.version,
            request=request,
            outputs=outputs,
        )


def _decoder(message: Any) -> Callable[[LoadedModel], oip_service.Decoded]:
    def decode(model: LoadedModel) -> oip_service.Decoded:
        request, slices = oip_grpc.decode(message)
        outputs = [o.name for o in model.runner.outputs]
        return request, oip.decode_inputs(request, slices, model.runner.inputs, outputs)

    return decode


def _deserializer(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``parse``, answering ``_UNPARSED`` for bytes that are not the message."""

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return _UNPARSED

    return deserialize


def _unary(
    method: Callable[[Any], Any], name: str, watch: ArrivalWatch
) -> Callable[[Iterator[Any], grpc.ServicerContext], Any]:
    """``method`` as a grpcio handler: the agent's errors become statuses (one line).

    Registered as stream-unary (the same on the wire as unary): grpcio calls it as soon
    as a call begins, so ``watch`` bounds the time its one request message takes to come
    (a unary handler would only be called once it had)."""

    def handle(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        # grpc.RpcError if the call is over (cancelled by the client or the watch, its
        # message too large): grpcio's own, it ends the call without logging
        with watch.waiting(context):
            request = next(requests, None)
        try:
            if request is None:
                raise InvalidInput(f"bad {name} request: no request message")
            if request is _UNPARSED:
                raise InvalidInput(f"bad {name} request: not a valid protobuf message")
            return method(request)
        except Exception as exc:
            code = next((c for kind, c in _STATUS if isinstance(exc, kind)), None)
            if code is None:
                text = str(exc).splitlines()
                logger.error(
                    "local gRPC %s failed: %s: %s",
                    name,
                    type(exc).__name__,
                    text[0] if text else "",
                )
                logger.debug("local gRPC handler failure", exc_info=True)
                context.abort(grpc.StatusCode.INTERNAL, "internal error")
            context.abort(code, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return handle


def _handler(service: InferenceService, watch: ArrivalWatch) -> grpc.GenericRpcHandler:
    messages = grpc_schema.messages()
    methods = {}
    for name, (request, response) in grpc_schema.METHODS.items():
        methods[name] = grpc.stream_unary_rpc_method_handler(
            _unary(getattr(service, name), name, watch),
            request_deserializer=_deserializer(messages[request].FromString),
            response_serializer=messages[response].SerializeToString,
        )
    return grpc.method_handlers_generic_handler(grpc_schema.SERVICE_NAME, methods)


class GrpcServer:
    """``service`` on ``host:port`` (port 0: a free one) until ``stop``."""

    def __init__(
        self, service: InferenceService, host: str, port: int, *, limits: Limits | None = None
    ) -> None:
        limits = limits or Limits()
        self._service = service
        self._host, self._port = host, port
        self._limits = limits
        self._server: grpc.Server | None = None
        self._watch = ArrivalWatch(limits.request_timeout_s)
        self.address: str | None = None

    def start(self) -> str:
        """Bind and serve; the address served (``host:port``). AgentError if it cannot bind."""
        server = grpc.server(
            # a thread per call allowed at once (started as needed): a call whose message
            # has not come yet holds its thread, and no other call queues behind it
            ThreadPoolExecutor(max_workers=self._limits.max_connections, thread_name_prefix="grpc"),
            handlers=[_handler(self._service, self._watch)],
            maximum_concurrent_rpcs=self._limits.max_connections,
            options=[
                (
                    "grpc.max_receive_message_length",
                    min(self._limits.max_body_bytes, MAX_MESSAGE_BYTES),
                ),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),
            ],
        )
        host = f"[{self._host}]" if ":" in self._host else self._host
        try:
            port = server.add_insecure_port(f"{host}:{self._port}")
        except RuntimeError as exc:
            port = 0
            logger.debug("gRPC bind failed: %s", exc)
        if port == 0:
            server.stop(None)
            raise AgentError(f"local gRPC API cannot bind {self._host}:{self._port}")
        self._watch.start()
        server.start()
        self._server = server
        self.address = f"{host}:{port}"
        logger.info("local gRPC inference API on %s", self.address)
        return self.address

    def stop(self, timeout: float = 10.0, *, wait: bool = True) -> threading.Event:
        """Refuse new calls now; let calls in flight finish (up to ``timeout`` seconds).
        ``wait=False``: return at once; the event is set once the server has stopped."""
        server, self._server = self._server, None
        if server is None:
            stopped = threading.Event()
            stopped.set()
            return stopped
        stopped = server.stop(timeout)
        self._watch.stop()
        if wait:
            stopped.wait(timeout + 1)
        return stopped
