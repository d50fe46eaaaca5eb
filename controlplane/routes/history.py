"""``/devices/{id}/history``: a device's heartbeat figures over time, per model version
(``controlplane.history``: as reported for a day, then hourly, for 30 days by default)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import select

from controlplane import history
from controlplane.deps import SessionDep
from controlplane.errors import NotFound
from controlplane.models import Device
from controlplane.schemas import HeartbeatSamplePublic

router = APIRouter(prefix="/devices", tags=["devices"])

MAX_SAMPLES = 5000


@router.get("/{device_id}/history", responses={404: {"description": "unknown device"}})
def device_history(
    device_id: str,
    session: SessionDep,
    model: str | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, e.g. 2026-12-05T10:00Z")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SAMPLES)] = 1000,
) -> list[HeartbeatSamplePublic]:
    """Samples oldest first: ``requests``/``errors`` count since the version was
    activated (the traffic between two samples is their difference); ``resolution_s``
    0 is as reported, else the width of the bucket a sample sums up."""
    if session.exec(select(Device.id).where(Device.id == device_id)).first() is None:
        raise NotFound(f"unknown device {device_id!r}")
    rows = history.history(session, device_id, model=model, since=since, limit=limit)
    return [HeartbeatSamplePublic.model_validate(row, from_attributes=True) for row in rows]
