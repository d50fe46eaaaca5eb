"""``/healthz`` and ``/api/v1/status`` (MQTT link and ingestion counters)."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.deps import ServicesDep
from controlplane.schemas import BridgeStatus, Health

router = APIRouter(tags=["system"])
status_router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> Health:
    return Health()


@status_router.get("/status")
def bridge_status(services: ServicesDep) -> BridgeStatus:
    bridge = services.bridge
    if bridge is None:
        return BridgeStatus(
            connected=False, received=0, applied=0, malformed=0, rejected=0, errors=0
        )
    return BridgeStatus(
        connected=bridge.connected,
        dropped=bridge.dropped,
        acks_sent=bridge.acks.acks_sent,
        spooled_stored=bridge.ingester.acks.stored_total,
        spooled_lost=bridge.ingester.acks.lost_total,
        **bridge.ingester.stats.as_dict(),
    )
