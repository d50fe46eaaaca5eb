"""The fleet cohort view: latency and errors by model version x backend x hardware profile.

Over a window (the last ``window_s`` seconds of heartbeat history), every device's samples
of one model version are one series; a cohort is every series with the same model,
version, backend and hardware profile (the profile the device's state report matched).
Two aggregates in the database, so a fleet of any size costs one query:

- per series (device, model, version, backend): the traffic in the window, as the highest
  cumulative count minus the lowest (a version activated again inside the window counts
  from its new start only), the mean p50 and the highest p95 it reported;
- per cohort: devices, requests, errors, the mean of the series' p50s, the mean and the
  worst of their p95s.

``resolution_s`` does not matter: a folded sample keeps the last counts of its bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from controlplane.history import HeartbeatSample
from controlplane.models import Device

#: Windows the dashboard and ``edgectl`` offer, by name.
WINDOWS = {"15m": 900, "1h": 3600, "6h": 21_600, "24h": 86_400, "7d": 604_800, "30d": 2_592_000}
DEFAULT_WINDOW = "1h"


@dataclass(frozen=True)
class Cohort:
    model: str
    version: str
    backend: str
    profile: str | None
    devices: int
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    worst_p95_ms: float | None

    @property
    def error_percent(self) -> float | None:
        return None if self.requests <= 0 else 100.0 * self.errors / self.requests

    @property
    def name(self) -> str:
        return f"{self.model} {self.version} · {self.backend or '?'} · {self.profile or '?'}"


def cohorts(
    session: Session,
    *,
    now: datetime,
    window_s: int,
    model: str | None = None,
    fleet: str | None = None,
) -> list[Cohort]:
    """Every cohort with samples in the window, by model, version, backend, profile."""
    s = HeartbeatSample
    since = now - timedelta(seconds=window_s)
    per_series = (
        select(
            col(s.device_id).label("device_id"),
            col(s.model).label("model"),
            col(s.version).label("version"),
            col(s.backend).label("backend"),
            (func.max(s.requests) - func.min(s.requests)).label("requests"),
            (func.max(s.errors) - func.min(s.errors)).label("errors"),
            func.avg(s.p50_ms).label("p50"),
            func.max(s.p95_ms).label("p95"),
        )
        .where(col(s.at) >= since, col(s.at) <= now)
        .group_by(col(s.device_id), col(s.model), col(s.version), col(s.backend))
    )
    if model is not None:
        per_series = per_series.where(col(s.model) == model)
    if fleet is not None:  # narrowed before the aggregate: only the fleet's samples read
        fleet_ids = select(col(Device.id)).where(col(Device.fleet) == fleet)
        per_series = per_series.where(col(s.device_id).in_(fleet_ids))
    series = per_series.subquery()
    query = (
        select(
            series.c.model,
            series.c.version,
            series.c.backend,
            col(Device.profile),
            func.count(series.c.device_id.distinct()),
            func.sum(series.c.requests),
            func.sum(series.c.errors),
            func.avg(series.c.p50),
            func.avg(series.c.p95),
            func.max(series.c.p95),
        )
        .join(Device, col(Device.id) == series.c.device_id)
        .group_by(series.c.model, series.c.version, series.c.backend, col(Device.profile))
        .order_by(series.c.model, series.c.version, series.c.backend, col(Device.profile))
    )
    found = []
    for name, version, backend, profile, devices, requests, errors, p50, p95, worst in (
        session.connection().execute(query).all()
    ):
        found.append(
            Cohort(
                model=name,
                version=version,
                backend=backend,
                profile=profile,
                devices=int(devices),
                requests=int(requests or 0),
                errors=int(errors or 0),
                p50_ms=None if p50 is None else float(p50),
                p95_ms=None if p95 is None else float(p95),
                worst_p95_ms=None if worst is None else float(worst),
            )
        )
    return found


def window_seconds(name: str | None) -> int | None:
    """A window's length by name (``1h``), None if it is not one of :data:`WINDOWS`."""
    return WINDOWS.get(name or DEFAULT_WINDOW)
