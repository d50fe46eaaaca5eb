"""``/devices/{id}/timeline`` and ``/cohorts``: what happened to a device, and how each
cohort of the fleet (model version x backend x hardware profile) performs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlmodel import select

from controlplane import cohorts as cohort_query
from controlplane import timeline
from controlplane.deps import SessionDep
from controlplane.errors import NotFound
from controlplane.models import Device, utcnow
from controlplane.trend_schemas import CohortPublic, TimelineEntryPublic

router = APIRouter(tags=["devices"])

MAX_ENTRIES = 1000
Kind = Literal["deployment", "status", "error", "selection", "link", "rollout"]
Window = Literal["15m", "1h", "6h", "24h", "7d", "30d"]


@router.get("/devices/{device_id}/timeline", responses={404: {"description": "unknown device"}})
def device_timeline(
    device_id: str,
    session: SessionDep,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES)] = 200,
) -> list[TimelineEntryPublic]:
    """Newest first: its deployment events, status changes, errors, backend selections
    (with every candidate's figures) and links, and the rollouts that touched it."""
    if session.exec(select(Device.id).where(Device.id == device_id)).first() is None:
        raise NotFound(f"unknown device {device_id!r}")
    entries = timeline.timeline(session, device_id, limit=limit, kind=kind)
    return [TimelineEntryPublic(**asdict(e)) for e in entries]


@router.get("/cohorts", tags=["fleets"])
def list_cohorts(
    session: SessionDep,
    window: Window = "1h",
    model: str | None = None,
    fleet: str | None = None,
) -> list[CohortPublic]:
    """Latency and errors by model version x backend x hardware profile over the last
    ``window`` of heartbeat history (``fleet``, ``model``: of those only)."""
    seconds = cohort_query.WINDOWS[window]
    found = cohort_query.cohorts(session, now=utcnow(), window_s=seconds, model=model, fleet=fleet)
    return [CohortPublic(**asdict(c), error_percent=c.error_percent) for c in found]
