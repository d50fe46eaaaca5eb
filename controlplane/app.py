"""``create_app(settings)``: the FastAPI application with its services and MQTT bridge.

Everything that can be wrong with the configuration (trusted keys, database, MQTT URL,
blob directory) is checked here, eagerly, and raised as :class:`ConfigError`; the
lifespan only starts and stops the MQTT bridge, which never fails to start (it keeps
retrying a broker that is down while the API serves).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anyio.to_thread
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from controlplane.db import init_db, make_engine
from controlplane.deps import Services
from controlplane.errors import ConfigError, ControlPlaneError, RangeNotSatisfiable
from controlplane.mqtt_bridge import MqttBridge
from controlplane.publisher import DesiredStatePublisher
from controlplane.routes import api_router, system
from controlplane.settings import ControlPlaneSettings
from model_store import (
    FilesystemArtifactStore,
    ModelStoreError,
    load_trusted_keys,
)

logger = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("edgefleet")
    except PackageNotFoundError:
        return "0+unknown"


def load_keys(paths: list[Path]) -> list[EllipticCurvePublicKey]:
    """Load PEM public keys from files and ``*.pub`` in directories; ConfigError if bad."""
    if not paths:
        return []
    try:
        return list(load_trusted_keys(paths))
    except (ModelStoreError, OSError) as exc:
        raise ConfigError(f"cannot load trusted release keys: {exc}") from exc


def _one_line_validation(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ControlPlaneError)
    async def _ours(_request: Request, exc: ControlPlaneError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RangeNotSatisfiable):
            headers["content-range"] = f"bytes */{exc.size}"
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line_validation(exc)}, status_code=422)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        logger.error(
            "database error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__
        )
        return JSONResponse(
            {"detail": f"database unavailable ({exc.__class__.__name__})"}, status_code=503
        )

    @app.exception_handler(ModelStoreError)
    async def _store(request: Request, exc: ModelStoreError) -> JSONResponse:
        logger.error("artifact store error on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)


def _open_store(directory: Path) -> FilesystemArtifactStore:
    """The blob store, after checking a file can be written there; ConfigError if not."""
    try:
        store = FilesystemArtifactStore(directory)
        with tempfile.TemporaryFile(dir=directory / "tmp"):
            pass
    except (ModelStoreError, OSError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else exc
        raise ConfigError(f"cannot use blob directory {directory}: {reason}") from exc
    return store


def build_services(
    settings: ControlPlaneSettings, *, publisher: DesiredStatePublisher | None = None
) -> Services:
    """Check the configuration and build the shared services; ConfigError if unusable."""
    trusted_keys = load_keys(settings.trusted_keys)
    target = settings.mqtt  # ConfigError if MQTT_URL is malformed
    store = _open_store(settings.blobs_dir)
    engine = make_engine(settings.db_url)
    init_db(engine)
    if not trusted_keys:
        logger.warning("no trusted release keys configured: model versions will be refused")
    bridge = None
    if publisher is None:
        bridge = MqttBridge(target, engine, client_id=settings.mqtt_client_id)
        publisher = bridge
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        trusted_keys=trusted_keys,
        publisher=publisher,
        bridge=bridge,
    )


def create_app(
    settings: ControlPlaneSettings | None = None,
    *,
    publisher: DesiredStatePublisher | None = None,
) -> FastAPI:
    """The control-plane app. With ``publisher`` (e.g. a MemoryPublisher) no MQTT bridge runs."""
    settings = settings or ControlPlaneSettings()
    services = build_services(settings, publisher=publisher)
    logger.info("control plane configuration: %s", settings.describe())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if services.bridge is not None:
            services.bridge.start()
        try:
            yield
        finally:
            if services.bridge is not None:
                await anyio.to_thread.run_sync(services.bridge.stop)
            services.engine.dispose()

    app = FastAPI(
        title="EdgeFleet control plane",
        version=_version(),
        summary="Signed model bundles, fleets, deployments and device state.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(system.router)
    app.include_router(api_router)
    _install_error_handlers(app)
    return app
