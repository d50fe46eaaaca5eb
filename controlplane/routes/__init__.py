"""One router per resource; ``api_router`` gathers them under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.routes import blobs, deployments, devices, fleets, models, system, trust

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(blobs.router)
api_router.include_router(models.router)
api_router.include_router(fleets.router)
api_router.include_router(deployments.router)
api_router.include_router(devices.router)
api_router.include_router(trust.router)
api_router.include_router(system.status_router)

__all__ = ["api_router", "system"]
