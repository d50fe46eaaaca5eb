"""What needs an operator's eye (read side, for the dashboard's overview): devices that
report ``failed``, and devices a health gate found regressed in a rollout still in
progress. Each is one indexed query with a limit, however large the fleet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from controlplane.models import Device, RolloutDevice


@dataclass(frozen=True)
class Flagged:
    """One device to look at: why, and in which rollout (if a rollout flagged it)."""

    device_id: str
    fleet: str | None
    reason: str | None
    rollout_id: int | None = None


def failed_devices(session: Session, *, limit: int) -> tuple[int, list[Flagged]]:
    """How many devices report ``failed``, and the first ``limit`` of them by id."""
    failed = col(Device.status) == "failed"
    total = session.exec(select(func.count()).select_from(Device).where(failed)).one()
    rows = session.exec(select(Device).where(failed).order_by(col(Device.id)).limit(limit))
    return int(total), [Flagged(d.id, d.fleet, d.last_error) for d in rows.all()]


def regressed_devices(session: Session, rollout_ids: Sequence[int], *, limit: int) -> list[Flagged]:
    """Devices the gate found regressed in the rollouts ``rollout_ids`` (those in
    progress), the first ``limit``."""
    if not rollout_ids:
        return []
    rows = session.exec(
        select(RolloutDevice)
        .where(col(RolloutDevice.rollout_id).in_(sorted(rollout_ids)))
        .where(col(RolloutDevice.status) == "regressed")
        .order_by(col(RolloutDevice.rollout_id), col(RolloutDevice.device_id))
        .limit(limit)
    ).all()
    return [Flagged(r.device_id, None, r.reason, r.rollout_id) for r in rows]
