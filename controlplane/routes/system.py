"""``/healthz`` (the process answers), ``/readyz`` (its database and broker too),
``/metrics`` (Prometheus, any API token: ``controlplane.metrics``) and ``/api/v1/status``
(MQTT link, ingestion counters, replicas)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from controlplane import leases
from controlplane.auth.dependency import authorize
from controlplane.deps import ServicesDep
from controlplane.models import utcnow
from controlplane.rollouts.driver import LEASE
from controlplane.schemas import BridgeStatus, Health, Readiness

router = APIRouter(tags=["system"])
status_router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready"}},
)
def readyz(services: ServicesDep) -> Response:
    """200 when the database answers and the MQTT bridge is connected; 503 (same body)
    otherwise: a load balancer sends this replica no traffic until then."""
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError as exc:
        database = f"unreachable ({type(exc).__name__})"
    bridge = services.bridge
    broker = "not used" if bridge is None else ("ok" if bridge.connected else "disconnected")
    ready = database == "ok" and broker != "disconnected"
    answer = Readiness(ready=ready, database=database, broker=broker)
    return JSONResponse(answer.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    dependencies=[Depends(authorize)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this replica (``controlplane.metrics``); any API token."""
    body = request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@status_router.get("/status")
def bridge_status(services: ServicesDep) -> BridgeStatus:
    lease = leases.current(services.engine, LEASE)
    replicas: dict[str, Any] = {
        "replica": services.settings.mqtt_client_id,
        "share_group": services.settings.mqtt_share_group,
        "rollout_driver": lease.holder if lease and lease.expires_at > utcnow() else None,
    }
    bridge = services.bridge
    if bridge is None:
        return BridgeStatus(
            connected=False, received=0, applied=0, malformed=0, rejected=0, errors=0, **replicas
        )
    counters: dict[str, Any] = bridge.ingester.stats.as_dict()
    return BridgeStatus(
        **replicas,
        **counters,
        connected=bridge.connected,
        dropped=bridge.dropped,
        acks_sent=bridge.acks.acks_sent,
        spooled_stored=bridge.ingester.acks.stored_total,
        spooled_lost=bridge.ingester.acks.lost_total,
    )
