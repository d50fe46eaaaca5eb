"""One router per resource; ``api_router`` gathers them under ``/api/v1``.

Every route under it passes :func:`controlplane.auth.dependency.authorize` (bearer
token and role, decided by method and path), so a router added here is covered.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from controlplane.auth.dependency import authorize
from controlplane.routes import (
    alerts,
    audit,
    blobs,
    deployments,
    devices,
    fleets,
    history,
    identity,
    models,
    rollouts,
    system,
    tokens,
    trends,
    trust,
)

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])
api_router.include_router(blobs.router)
api_router.include_router(models.router)
api_router.include_router(fleets.router)
api_router.include_router(deployments.router)
api_router.include_router(rollouts.router)
api_router.include_router(devices.router)
api_router.include_router(history.router)
api_router.include_router(trends.router)
api_router.include_router(trust.router)
api_router.include_router(system.status_router)
api_router.include_router(tokens.router)
api_router.include_router(identity.router)
api_router.include_router(audit.router)
api_router.include_router(alerts.router)

__all__ = ["api_router", "system"]
