"""Answers of ``/devices/{id}/timeline`` and ``/cohorts`` (the figures over time)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from controlplane.schemas import UtcDatetime


class TimelineEntryPublic(BaseModel):
    """One thing that happened to a device: ``kind`` is deployment, status, error,
    selection (``detail`` holds every candidate's figures), link or rollout."""

    at: UtcDatetime
    kind: str
    message: str
    model: str | None = None
    version: str | None = None
    rollout_id: int | None = None
    deployment_id: int | None = None
    detail: dict[str, Any] | None = None


class CohortPublic(BaseModel):
    """Devices serving one model version with one backend on one hardware profile, over
    the window: their traffic in it, the mean of their p50s, the mean and the worst of
    their p95s."""

    model: str
    version: str
    backend: str
    profile: str | None
    devices: int
    requests: int
    errors: int
    error_percent: float | None
    p50_ms: float | None
    p95_ms: float | None
    worst_p95_ms: float | None
