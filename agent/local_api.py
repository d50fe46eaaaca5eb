"""Local inference server: Open Inference Protocol (KServe v2) REST on a loopback address.

``build_app`` is the FastAPI app (thin routes over ``ServedModels`` and ``agent.oip``);
``LocalApiServer`` binds the socket itself (so port 0 works and the real URL is known)
and runs uvicorn in a thread. Errors are ``{"error": "<one line>"}``: 400 for a bad
request or tensor, 404 for an unknown model, 500 if the backend fails.

Bodies are strict JSON both ways: the non-standard literals ``NaN``/``Infinity`` are
refused in requests, and non-finite output values are written as the strings
``"NaN"``/``"Infinity"``/``"-Infinity"`` (see ``agent.oip``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import pydantic_core
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent import oip
from agent.errors import AgentError, InferenceError, InvalidInput, ModelNotFound
from agent.serving import LoadedModel, ServedModels

logger = logging.getLogger(__name__)

SERVER_NAME = "edgefleet-agent"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status)


def _check_version(model: LoadedModel, version: str | None) -> None:
    if version is not None and version != model.version:
        raise ModelNotFound(f"model {model.name!r} version {version!r} is not active")


def build_app(models: ServedModels, *, server_version: str) -> FastAPI:
    app = FastAPI(title="EdgeFleet agent (Open Inference Protocol)", docs_url=None, redoc_url=None)

    @app.exception_handler(ModelNotFound)
    async def _not_found(_: Request, exc: ModelNotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(AgentError)
    async def _failed(_: Request, exc: AgentError) -> JSONResponse:
        return _error(500, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, f"bad request: {exc.errors()[0].get('msg', 'invalid')}")

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> Response:
        ok = len(models) > 0
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2")
    def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": server_version, "extensions": []}

    def metadata(name: str, version: str | None) -> dict[str, Any]:
        model = models.get(name)
        _check_version(model, version)
        return oip.model_metadata(
            name=model.name,
            version=model.version,
            platform=model.runner.platform,
            inputs=model.runner.inputs,
            outputs=model.runner.outputs,
        )

    @app.get("/v2/models/{name}")
    def model_metadata(name: str) -> dict[str, Any]:
        return metadata(name, None)

    @app.get("/v2/models/{name}/versions/{version}")
    def model_version_metadata(name: str, version: str) -> dict[str, Any]:
        return metadata(name, version)

    def model_ready(name: str, version: str | None) -> dict[str, Any]:
        model = models.get(name)
        _check_version(model, version)
        return {"name": model.name, "ready": True}

    @app.get("/v2/models/{name}/ready")
    def ready_any(name: str) -> dict[str, Any]:
        return model_ready(name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready")
    def ready_version(name: str, version: str) -> dict[str, Any]:
        return model_ready(name, version)

    async def infer(name: str, version: str | None, request: Request) -> Response:
        raw = await request.body()
        try:
            # pydantic-core's JSON parser and serialiser are ~6x and ~9x faster than the
            # json module on tensor-sized payloads (bench/inference.py).
            body = pydantic_core.from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            raise InvalidInput(f"request body is not JSON: {exc}") from exc
        result = await run_in_threadpool(run_inference, models, name, version, body)
        payload = pydantic_core.to_json(result, inf_nan_mode=oip.NON_FINITE_JSON)
        return Response(payload, media_type="application/json")

    @app.post("/v2/models/{name}/infer")
    async def infer_any(name: str, request: Request) -> Response:
        return await infer(name, None, request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await infer(name, version, request)

    return app


def run_inference(
    models: ServedModels, name: str, version: str | None, body: Any
) -> dict[str, Any]:
    """Decode, run and encode one OIP request on the model currently serving ``name``."""
    with models.use(name) as model:
        _check_version(model, version)
        request, inputs = oip.decode_request(
            body, model.runner.inputs, [o.name for o in model.runner.outputs]
        )
        outputs = model.infer(inputs)
        missing = [o.name for o in request.outputs or [] if o.name not in outputs]
        if missing:
            raise InferenceError(f"model did not produce output {missing[0]!r}")
        return oip.encode_response(
            model_name=model.name, model_version=model.version, request=request, outputs=outputs
        )


class LocalApiServer:
    """uvicorn serving ``app`` on a socket bound here, in a daemon thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def start(self, timeout: float = 10.0) -> str:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections; with
        # proto 0 it does not, and Nagle + delayed ACK add ~40 ms to every response.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise AgentError(
                f"local API cannot bind {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"local-api-{port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AgentError(f"local API did not start on {self.url}")
            time.sleep(0.02)
        logger.info("local inference API on %s", self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None
