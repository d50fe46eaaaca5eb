"""Local inference server: Open Inference Protocol (KServe v2) REST on a loopback address.

``build_app`` returns ``LocalApi``, the routes as one plain callable from a parsed
request to a response (no web framework: the request path is a handful of string
compares); ``LocalApiServer`` serves it with ``agent.serving.http_server`` (one thread per
connection, so inference never runs on an event loop thread). Each inference holds its
model with ``ServedModels.use`` from decoding to encoding, so a response is wholly
from one model version even across a hot swap.

Tensors travel as JSON or with the binary tensor data extension (``agent.serving.oip_binary``;
``/v2`` lists ``binary_tensor_data``), mixed freely in one request: binary inputs are
numpy views of the request body, binary outputs are written from the output arrays.
``GET /metrics`` is ``agent.telemetry.prometheus.render_prometheus`` (Prometheus text 0.0.4).

Errors are ``{"error": "<one line>"}``: 400 for a bad request or tensor, 404 for an
unknown model, version or path, 405 for a wrong method, 503 for a pipeline whose step
model is not served (``agent.serving.pipeline``), 408/411/413/431/503 from the
transport, 415 for a compressed body, 500 if the backend fails, 503 when the model's fair
share is full (``agent.serving.fairshare``: its concurrency limit and queue; an inference
request is read, run and answered on the cores of its model's share, ``LocalApi.scope``). Bodies are
strict JSON both ways:
the literals ``NaN``/``Infinity`` are refused in requests, and non-finite output values
are written as the strings ``"NaN"``/``"Infinity"``/``"-Infinity"`` (see ``agent.serving.oip``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pydantic_core

from agent.errors import AgentError, InvalidInput, ModelNotFound, StepUnavailable
from agent.serving import oip_plans, oip_service
from agent.serving.fairshare import Overloaded
from agent.serving.http_server import HttpServer
from agent.serving.http_wire import Limits, Request, Response, default_body, error_response
from agent.serving.models import LoadedModel, ServedModels
from agent.telemetry.prometheus import PROMETHEUS_CONTENT_TYPE, render_prometheus

if TYPE_CHECKING:  # the tensor codecs load numpy: imported on the first inference request
    import numpy as np

    from agent.serving import oip

logger = logging.getLogger(__name__)

SERVER_NAME = oip_service.SERVER_NAME
EXTENSIONS = ("binary_tensor_data",)
_GET = ("GET", "HEAD")
_POST = ("POST",)
#: JSON spelling of non-finite floats (pydantic-core's ``inf_nan_mode="strings"``)
NON_FINITE_JSON: Final = "strings"


def _json(body: Any, status: int = 200) -> Response:
    return Response(status, (pydantic_core.to_json(body, inf_nan_mode=NON_FINITE_JSON),))


def run_inference(
    models: ServedModels,
    name: str,
    version: str | None,
    body: Any,
    binary: memoryview | None = None,
    buffers: list[Any] | None = None,
    *,
    header: bytes | None = None,
    plans: oip_plans.Plans | None = None,
) -> bytes:
    """Decode, run and encode one OIP request on the model currently serving ``name``:
    the answer's JSON (``agent.serving.oip_json``).

    ``binary``: the request's binary tensor data; ``buffers``: receives the binary
    outputs (in order) when given, else every output is JSON. ``body`` is the parsed
    JSON ``header``, or None when ``plans`` knows ``header`` (``agent.serving.oip_plans``:
    then it is parsed only if the plan was made for another model). A request decoded
    from a plan is answered with the JSON the plan kept for outputs like its own."""
    # the codecs are imported where they are used: they load numpy (an idle agent has
    # none), and a request decoded and answered from a plan needs neither; each import is
    # of a module, not ``from agent.serving import``, whose fromlist costs a Python call
    used: oip_plans.Plan | None = None

    def decode(model: LoadedModel) -> oip_service.Decoded:
        nonlocal body, used
        if plans is not None and header is not None and binary is not None:
            used = plans.find(header, model, binary)
            if used is not None:
                return used.request, used.decode(binary)
            if body is None:
                from agent.serving.oip_json import loads_request

                body = loads_request(header)
        from agent.serving.oip import decode_request

        outputs = [o.name for o in model.runner.outputs]
        request, inputs = decode_request(body, model.runner.inputs, outputs, binary)
        if plans is not None and header is not None:
            plans.keep(header, model, request, binary)
        return request, inputs

    def encode(
        model: LoadedModel, request: oip.InferenceRequest, outputs: dict[str, np.ndarray]
    ) -> bytes:
        if used is not None and buffers is not None and (kept := used.answer(outputs)):
            payload, data = kept
            buffers.extend(data)
            return payload
        from agent.serving.oip import encode_response
        from agent.serving.oip_json import dumps_response

        result = encode_response(
            model_name=model.name,
            model_version=model.version,
            request=request,
            outputs=outputs,
            binary=buffers,
        )
        payload = dumps_response(result)
        if used is not None and buffers is not None:
            used.keep_answer(outputs, payload, result)
        return payload

    return oip_service.infer(models, name, version, decode, encode)


class LocalApi:
    """The OIP routes (and ``/metrics``) over ``models``."""

    def __init__(self, models: ServedModels, *, server_version: str, data_dir: Path | None):
        self._models = models
        self._server_version = server_version
        self._data_dir = data_dir
        self._plans = oip_plans.Plans()

    def __call__(self, request: Request) -> Response:
        try:
            return self._route(request)
        except ModelNotFound as exc:
            return error_response(404, str(exc))
        except InvalidInput as exc:
            return error_response(400, str(exc))
        except (StepUnavailable, Overloaded) as exc:  # a step gone; the fair share full
            return error_response(503, str(exc))
        except AgentError as exc:
            return error_response(500, str(exc))

    def scope(self, request: Request) -> AbstractContextManager[None] | None:
        """What the transport runs an inference request within, from its head to its
        answer: the cores of the model it names (``agent.serving.placement``); None
        when there is nothing to confine (another route, a model without cores)."""
        route, name, _ = _route_of(request.path)
        return self._models.placement(name) if route is _INFER else None

    @staticmethod
    def allocate_body(headers: Mapping[str, str], length: int) -> memoryview:
        """Body buffers for the transport: binary tensor data lands 64-byte aligned, and
        memory is committed only as the body arrives (not when it is announced)."""
        if not length:  # e.g. a GET (health probes): no tensor data, so no codec loaded
            return default_body(headers, length)
        # here: it loads numpy (an idle agent has none); the module itself, not ``from
        # agent.serving import``, whose fromlist costs a Python call on every request
        from agent.serving.oip_binary import HEADER_KEY, aligned_body

        return aligned_body(headers.get(HEADER_KEY), length)

    def _route(self, request: Request) -> Response:
        route, name, version = _route_of(request.path)
        if route is _INFER:
            if request.method not in _POST:
                return _not_allowed(request, _POST)
            return self._infer(request, name, version)
        if route is _NOT_FOUND:
            return error_response(404, "not found")
        if request.method not in _GET:
            return _not_allowed(request, _GET)
        if route == "metrics":
            return self._metrics()
        if route == "server":
            return _json(self._server_metadata())
        if route == "live":
            return _json({"live": True})
        if route == "ready":
            ready = len(self._models) > 0
            return _json({"ready": ready}, 200 if ready else 503)
        if route == "model":
            return _json(self._model_metadata(name, version))
        return _json(self._model_ready(name, version))  # "model ready"

    def _server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": self._server_version, "extensions": EXTENSIONS}

    def _model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        return oip_service.model_metadata(self._models, name, version)

    def _model_ready(self, name: str, version: str | None) -> dict[str, Any]:
        model = self._models.get(name)
        oip_service.check_version(model, version)
        return {"name": model.name, "ready": True}

    def _metrics(self) -> Response:
        text = render_prometheus(self._models.metrics, self._data_dir)
        return Response(200, (text,), content_type=PROMETHEUS_CONTENT_TYPE)

    def _infer(self, request: Request, name: str, version: str | None) -> Response:
        encoding = request.headers.get("content-encoding")
        if encoding is not None and (encoding := encoding.lower()) != "identity":
            return error_response(415, f"Content-Encoding {encoding[:40]} is not supported")
        with self._models.admitted(name):  # the fair-share slot before any decoding
            return self._admitted_infer(request, name, version)

    def _admitted_infer(self, request: Request, name: str, version: str | None) -> Response:
        # here: the codecs load numpy and the JSON parsers (an idle agent has none)
        from agent.serving.oip_binary import CONTENT_TYPE, HEADER, HEADER_KEY, split_body

        header, binary = split_body(request.body, request.headers.get(HEADER_KEY))
        # tensor data straight into arrays and back (agent.serving.oip_json); the JSON
        # part is copied once (a few hundred bytes with binary tensors); a header decoded
        # before for the same model is not parsed again (agent.serving.oip_plans)
        raw = bytes(header)
        plans = self._plans
        if binary is not None and plans.knows(raw):
            body = None
        else:
            from agent.serving.oip_json import loads_request

            body = loads_request(raw)
        buffers: list[Any] = []
        payload = run_inference(
            self._models, name, version, body, binary, buffers, header=raw, plans=plans
        )
        if not buffers:
            return Response(200, (payload,))
        return Response(
            200,
            (payload, *buffers),
            content_type=CONTENT_TYPE,
            headers=((HEADER, str(len(payload))),),
        )


#: routes ``_route_of`` tells apart (compared by identity on the hot path)
_INFER: Final = "infer"
_NOT_FOUND: Final = "not found"
_ROUTE_NONE: Final = (_NOT_FOUND, "", None)
#: request path -> (route, model name or "", version or None), for the paths seen lately
#: (a client sends the same few: splitting and comparing each was a tenth of the local
#: API's own Python per binary request, twice: for ``scope`` and for ``_route``)
_ROUTES: dict[str, tuple[str, str, str | None]] = {}
_KEEP_ROUTES = 256
_KEEP_PATH_CHARS = 256


def _route_of(path: str) -> tuple[str, str, str | None]:
    """What ``path`` asks for: (route, model name, version); ``_NOT_FOUND`` if nothing."""
    route = _ROUTES.get(path)
    if route is None:
        route = _parse_route(path)
        if len(path) <= _KEEP_PATH_CHARS:  # a long path (up to the 16 KiB head) is not kept
            if len(_ROUTES) >= _KEEP_ROUTES:
                _ROUTES.clear()
            _ROUTES[path] = route
    return route


def _parse_route(path: str) -> tuple[str, str, str | None]:
    parts = path.split("/")
    if parts[0] or len(parts) < 2:
        return _ROUTE_NONE
    if parts[1:] == ["metrics"]:
        return ("metrics", "", None)
    if parts[1] != "v2":
        return _ROUTE_NONE
    rest = parts[2:]
    if not rest:
        return ("server", "", None)
    if rest == ["health", "live"]:
        return ("live", "", None)
    if rest == ["health", "ready"]:
        return ("ready", "", None)
    if rest[0] != "models" or len(rest) < 2:
        return _ROUTE_NONE
    name, tail, version = rest[1], rest[2:], None
    if len(tail) >= 2 and tail[0] == "versions":
        version, tail = tail[1], tail[2:]
    if not tail:
        return ("model", name, version)
    if tail == ["ready"]:
        return ("model ready", name, version)
    if tail == ["infer"]:
        return (_INFER, name, version)
    return _ROUTE_NONE


def _not_allowed(request: Request, methods: tuple[str, ...]) -> Response:
    response = error_response(405, f"method {request.method} not allowed")
    response.headers = (("Allow", ", ".join(methods)),)
    return response


def build_app(
    models: ServedModels, *, server_version: str, data_dir: Path | None = None
) -> LocalApi:
    """The local API's routes; ``data_dir`` is the agent's (its disk shows in /metrics)."""
    return LocalApi(models, server_version=server_version, data_dir=data_dir)


class LocalApiServer:
    """``app`` served on ``host:port`` (port 0: a free one) until ``stop``."""

    def __init__(self, app: LocalApi, host: str, port: int, *, limits: Limits | None = None):
        self._http = HttpServer(
            app,
            host,
            port,
            limits=limits,
            body_allocator=app.allocate_body,
            scope=app.scope,
            server_header=SERVER_NAME,
        )
        self.url: str | None = None

    def start(self) -> str:
        self.url = self._http.start()
        logger.info("local inference API on %s", self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting at once; finish requests in flight (up to ``timeout`` seconds);
        close idle keep-alive connections unanswered."""
        self._http.stop(timeout)
