"""``create_app(settings)``: the FastAPI application with its services and MQTT bridge.

Everything that can be wrong with the configuration (root keys, trust chain, signing
key, database, MQTT URL, blob directory) is checked here, eagerly, and raised as
:class:`ConfigError`; the lifespan only starts and stops the MQTT bridge, which never
fails to start (it keeps retrying a broker that is down while the API serves), and the
rollout driver (``app.state.rollout_driver``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anyio.to_thread
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane import openapi
from controlplane.alerts import emit as alert_events
from controlplane.alerts.dispatch import Dispatcher
from controlplane.alerts.sender import RetryPolicy
from controlplane.audit.recorder import AuditMiddleware
from controlplane.auth.bootstrap import bootstrap_admin, check_admin_token
from controlplane.auth.dependency import api_path, authorize
from controlplane.blob_urls import BlobUrls
from controlplane.commands import CommandSigner
from controlplane.dashboard import root_router as dashboard_root
from controlplane.dashboard import router as dashboard_router
from controlplane.db import init_db, make_engine
from controlplane.deps import Services
from controlplane.errors import ConfigError, ControlPlaneError, RangeNotSatisfiable
from controlplane.identity.ca import DeviceCA, certifies_device_ca
from controlplane.maintenance import Maintenance
from controlplane.metrics import LatencyMiddleware, Metrics
from controlplane.mqtt_bridge import MqttBridge, TlsFiles
from controlplane.publisher import DesiredStatePublisher
from controlplane.rollouts.driver import RolloutDriver
from controlplane.rollouts.rows import LOCK_NOT_AVAILABLE
from controlplane.routes import api_router, system
from controlplane.settings import ControlPlaneSettings
from controlplane.trust import TrustStore, certifies
from model_store import (
    ArtifactStore,
    FilesystemArtifactStore,
    ModelStoreError,
    TrustDocument,
    key_id,
    load_private_key,
    load_trusted_keys,
)

logger = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("edgefleet")
    except PackageNotFoundError:
        return "0+unknown"


def load_root_keys(paths: list[Path]) -> list[EllipticCurvePublicKey]:
    """The pinned root public keys (files, or directories of ``*.pub``); ConfigError if none."""
    if not paths:
        raise ConfigError("no pinned root keys: set --root-keys or EDGEFLEET_ROOT_KEYS")
    try:
        return list(load_trusted_keys(paths))
    except (ModelStoreError, OSError) as exc:
        raise ConfigError(f"cannot load root keys: {exc}") from exc


def load_signing_key(path: Path | None) -> EllipticCurvePrivateKey:
    """This control plane's private key; ConfigError if missing or unusable."""
    if path is None:
        raise ConfigError(
            "no control-plane signing key: set --control-plane-key or EDGEFLEET_CONTROL_PLANE_KEY"
        )
    try:
        return load_private_key(path)
    except (ModelStoreError, OSError) as exc:
        raise ConfigError(f"cannot load control-plane key: {exc}") from exc


def load_device_ca_key(path: Path | None) -> EllipticCurvePrivateKey | None:
    """The device CA's private key, if configured; ConfigError if unusable."""
    if path is None:
        return None
    try:
        return load_private_key(path)
    except (ModelStoreError, OSError) as exc:
        raise ConfigError(f"cannot load device CA key: {exc}") from exc


def read_trust_file(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        with path.open("rb") as fh:
            return fh.read(16 * 1024 * 1024)
    except OSError as exc:
        raise ConfigError(f"cannot read trust document {path}: {exc.strerror or exc}") from exc


def _one_line_validation(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


#: what FastAPI answers (400) for a body it cannot decode; answered as the 422 of any
#: other malformed body instead, after the token check
UNPARSABLE_BODY = "There was an error parsing the body"


async def _token_refused(request: Request) -> JSONResponse | None:
    """The 401/403 answer if the request needs a token it does not carry, else None."""
    if not openapi.behind_token(api_path(request)):
        return None
    try:
        await authorize(request, request.app.state.services)
    except HTTPException as refused:
        return JSONResponse(
            {"detail": refused.detail}, status_code=refused.status_code, headers=refused.headers
        )
    return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method the path answers, not one route's
            documented = openapi.allowed_methods(app, api_path(request))
            if documented:
                headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
                headers["Allow"] = ", ".join(documented)
        if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
            # a body FastAPI cannot even decode: as a body that is not JSON (below)
            refused = await _token_refused(request)
            if refused is not None:
                return refused
            return JSONResponse({"detail": "body: not JSON"}, status_code=422)
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ControlPlaneError)
    async def _ours(_request: Request, exc: ControlPlaneError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RangeNotSatisfiable):
            headers["content-range"] = f"bytes */{exc.size}"
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(error.get("type") == "json_invalid" for error in exc.errors()):
            # a body that is not JSON is refused before the token check runs (a valid
            # one is checked after it): check the token first, as for any other request
            refused = await _token_refused(request)
            if refused is not None:
                return refused
            return JSONResponse({"detail": "body: not JSON"}, status_code=422)
        return JSONResponse({"detail": _one_line_validation(exc)}, status_code=422)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == LOCK_NOT_AVAILABLE:
            logger.warning("lock wait timed out on %s %s", request.method, request.url.path)
            return JSONResponse(
                {"detail": "the database is busy (a row lock wait timed out); try again"},
                status_code=503,
            )
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


def _open_store(settings: ControlPlaneSettings) -> ArtifactStore:
    """The blob store (``EDGEFLEET_BLOB_STORE``, else ``DATA_DIR/blobs``), after checking
    it can be used: a file written there, or the bucket reached; ConfigError if not."""
    if settings.blob_store:
        from model_store.s3_storage import S3ArtifactStore  # needs boto3: only when asked

        try:
            s3 = S3ArtifactStore.connect(
                settings.blob_store,
                endpoint_url=settings.s3_endpoint_url,
                public_url=settings.s3_public_url,
                region=settings.s3_region,
            )
        except ModelStoreError as exc:
            raise ConfigError(str(exc)) from exc
        logger.info("bundle files live in %s; devices download with presigned URLs", s3.location)
        return s3
    directory = settings.blobs_dir
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
    """Check the configuration and build the shared services; ConfigError if unusable.

    Refused: no pinned root keys or signing key; a trust chain (stored, or the bootstrap
    document) that does not verify from the pinned roots or has expired; a signing key
    the current trust document does not certify for the control-plane role.
    """
    roots = load_root_keys(settings.root_keys)
    key = load_signing_key(settings.control_plane_key)
    ca_key = load_device_ca_key(settings.device_ca_key)
    check_admin_token(settings.admin_token)  # ConfigError before anything is touched
    bootstrap = read_trust_file(settings.trust)
    target = settings.mqtt  # ConfigError if MQTT_URL is malformed
    tls = None
    if any((settings.mqtt_ca, settings.mqtt_cert, settings.mqtt_key)):
        if not target.tls:
            raise ConfigError("EDGEFLEET_MQTT_CA/CERT/KEY need an mqtts:// MQTT_URL")
        tls = TlsFiles(settings.mqtt_ca, settings.mqtt_cert, settings.mqtt_key)
    store = _open_store(settings)
    engine = make_engine(settings.db_url)
    init_db(engine)
    signing_key_id = key_id(key.public_key())

    def certified(document: TrustDocument) -> None:
        if not certifies(document, signing_key_id):
            raise ConfigError(
                f"control-plane key {signing_key_id} is not certified by trust document "
                f"v{document.version}"
            )
        if ca_key is not None and not certifies_device_ca(document, key_id(ca_key.public_key())):
            raise ConfigError(
                f"device CA key {key_id(ca_key.public_key())} is not certified by trust "
                f"document v{document.version} (role device-ca)"
            )

    try:
        trust = TrustStore.open(
            engine, roots, bootstrap=bootstrap, bootstrap_name=str(settings.trust), accept=certified
        )
    except ConfigError:
        engine.dispose()
        raise
    signer = CommandSigner(
        key=key,
        trust=trust,
        ttl=timedelta(seconds=settings.command_ttl),
        urls=BlobUrls(store, settings.blob_url_ttl) if settings.blob_store else None,
    )
    device_ca = None
    if ca_key is not None:
        device_ca = DeviceCA(ca_key, trust, timedelta(seconds=settings.device_cert_ttl))
        logger.info("device CA %s issues device certificates", device_ca.key_id)
    else:
        logger.warning(
            "no device CA key (EDGEFLEET_DEVICE_CA_KEY): devices cannot enroll, and reports "
            "of devices that are not enrolled are dropped"
        )
    bootstrap_admin(engine, settings.admin_token)  # the first admin API token, if none yet
    logger.info(
        "trust document v%s certifies control-plane key %s", trust.document.version, signer.key_id
    )
    bridge = None
    if publisher is None:
        bridge = MqttBridge(
            target,
            engine,
            signer,
            client_id=settings.mqtt_client_id,
            tls_files=tls,
            share_group=settings.mqtt_share_group,
        )
        publisher = bridge
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        trust=trust,
        signer=signer,
        publisher=publisher,
        bridge=bridge,
        device_ca=device_ca,
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

    driver = RolloutDriver(
        services.engine,
        services.signer,
        services.publisher,
        tick_s=settings.rollout_tick_s,
        replica=settings.mqtt_client_id,
    )
    maintenance = Maintenance(
        services.engine,
        settings.retention,
        replica=settings.mqtt_client_id,
        audit_keep_s=settings.audit_keep_s,
    )
    alert_events.install(services.engine)  # alert events commit with their changes
    alerts = Dispatcher(
        services.engine,
        replica=settings.mqtt_client_id,
        retry=RetryPolicy(
            backoff_s=settings.alert_backoff_s,
            cap_s=settings.alert_backoff_cap_s,
            max_attempts=settings.alert_max_attempts,
            timeout_s=settings.alert_timeout_s,
        ),
        interval_s=settings.alert_tick_s,
        keep_s=settings.alert_keep_s,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if services.bridge is not None:
            services.bridge.start()
        driver.start()
        maintenance.start()
        alerts.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(alerts.stop)
            await anyio.to_thread.run_sync(maintenance.stop)
            await anyio.to_thread.run_sync(driver.stop)
            if services.bridge is not None:
                await anyio.to_thread.run_sync(services.bridge.stop)
            alert_events.uninstall(services.engine)
            services.engine.dispose()

    app = FastAPIOffline(  # /docs and /redoc load their scripts from here, not a CDN
        title="EdgeFleet control plane",
        version=_version(),
        summary="Signed model bundles, fleets, deployments and device state.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics = metrics = Metrics(services)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    app.add_middleware(AuditMiddleware, engine=services.engine)  # every write, recorded
    app.state.rollout_driver = driver
    app.state.maintenance = maintenance
    app.state.alerts = alerts
    app.include_router(system.router)
    app.include_router(api_router)
    app.include_router(dashboard_router)
    app.include_router(dashboard_root)
    _install_error_handlers(app)
    openapi.install(app)
    return app
