"""``/healthz`` and ``/api/v1/status`` (MQTT link, ingestion counters, replicas)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from controlplane import leases
from controlplane.deps import ServicesDep
from controlplane.models import utcnow
from controlplane.rollouts.driver import LEASE
from controlplane.schemas import BridgeStatus, Health

router = APIRouter(tags=["system"])
status_router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> Health:
    return Health()


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
