"""A device's timeline: what happened to it, newest first.

``deviceevent`` keeps what a device's reports changed, one row a change (``record_*``,
called by ``controlplane.crud.reports`` in the report's transaction):

- ``deployment``: each deployment event the agent sent (downloading, activated, failed,
  rolled back, ...), with its deployment and reason;
- ``status``: its status moved (``idle`` -> ``updating`` -> ``active``, ``failed``, ...);
- ``error``: it reported a new last error;
- ``selection``: it chose a backend for a model version, with every candidate's figures;
- ``link``: it went online or offline.

``timeline`` merges those rows with the rollouts that touched the device (from
``rolloutdevice``) into one list. Rows older than the heartbeat history's retention are
dropped with it (``prune``, run by ``controlplane.maintenance``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Index, Integer, delete
from sqlmodel import JSON, Field, Session, SQLModel, col, select

from controlplane.models import Rollout, RolloutDevice

_ID = BigInteger().with_variant(Integer(), "sqlite")


class DeviceEvent(SQLModel, table=True):
    __table_args__ = (
        Index("ix_deviceevent_device_at", "device_id", "at"),
        Index("ix_deviceevent_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_ID)
    device_id: str = Field(max_length=128)
    at: datetime = Field(sa_type=DateTime(timezone=True))
    #: deployment, status, error, selection, link
    kind: str = Field(max_length=16)
    model: str | None = Field(default=None, max_length=128)
    version: str | None = Field(default=None, max_length=128)
    deployment_id: int | None = None
    message: str = Field(default="", max_length=1024)
    #: a selection's figures: ``{chosen, reason, candidates: [...]}``
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSON)


def _event(device_id: str, at: datetime, kind: str, message: str, **more: Any) -> DeviceEvent:
    return DeviceEvent(device_id=device_id, at=at, kind=kind, message=message[:1024], **more)


def record_deployment(
    session: Session,
    *,
    device_id: str,
    at: datetime,
    kind: str,
    model: str,
    version: str,
    deployment_id: int | None,
    reason: str | None,
) -> None:
    message = kind.replace("_", " ") + (f": {reason}" if reason else "")
    session.add(
        _event(
            device_id, at, "deployment", message,
            model=model, version=version, deployment_id=deployment_id,
        )
    )  # fmt: skip


def record_changes(
    session: Session,
    *,
    device_id: str,
    at: datetime,
    status: tuple[str, str],
    error: tuple[str | None, str | None],
    selections: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """What a state report changed: ``(before, after)`` of each."""
    if status[0] != status[1]:
        session.add(_event(device_id, at, "status", f"{status[0]} → {status[1]}"))
    if error[1] and error[1] != error[0]:
        session.add(_event(device_id, at, "error", error[1]))
    before, after = selections
    for model, chosen in sorted(after.items()):
        if _selection_key(before.get(model)) == _selection_key(chosen):
            continue
        message = f"chose {chosen.get('chosen') or chosen.get('backend')}: {chosen.get('reason')}"
        session.add(
            _event(
                device_id, at, "selection", message,
                model=model, version=chosen.get("version"), detail=chosen,
            )
        )  # fmt: skip


def _selection_key(selection: dict[str, Any] | None) -> tuple[Any, ...] | None:
    if selection is None:
        return None
    return (selection.get("bundle_digest"), selection.get("chosen"), selection.get("elapsed_s"))


def record_link(session: Session, *, device_id: str, at: datetime, online: bool) -> None:
    session.add(_event(device_id, at, "link", "online" if online else "offline"))


@dataclass(frozen=True)
class Entry:
    """One line of a timeline."""

    at: datetime
    kind: str
    message: str
    model: str | None = None
    version: str | None = None
    rollout_id: int | None = None
    deployment_id: int | None = None
    detail: dict[str, Any] | None = field(default=None, compare=False)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _rollout_entries(session: Session, device_id: str, limit: int) -> list[Entry]:
    rows = session.exec(
        select(RolloutDevice, Rollout)
        .join(Rollout, col(Rollout.id) == col(RolloutDevice.rollout_id))
        .where(col(RolloutDevice.device_id) == device_id)
        .order_by(col(RolloutDevice.rollout_id).desc())
        .limit(limit)
    ).all()
    found = []
    for place, rollout in rows:
        what = "removal of" if rollout.remove else "rollout of"
        message = (
            f"{what} {rollout.model} {rollout.version} (batch {place.batch + 1}): "
            f"{place.status}" + (f", {place.reason}" if place.reason else "")
        )
        at = place.started_at or place.updated_at
        found.append(
            Entry(
                at=_utc(at),
                kind="rollout",
                message=message,
                model=rollout.model,
                version=rollout.version,
                rollout_id=rollout.id,
                deployment_id=rollout.deployment_id,
            )
        )
    return found


def timeline(
    session: Session, device_id: str, *, limit: int = 200, kind: str | None = None
) -> list[Entry]:
    """The device's newest ``limit`` entries, newest first (``kind``: of one kind)."""
    query = select(DeviceEvent).where(col(DeviceEvent.device_id) == device_id)
    if kind is not None:
        query = query.where(col(DeviceEvent.kind) == kind)
    rows = session.exec(query.order_by(col(DeviceEvent.at).desc()).limit(limit)).all()
    entries = [
        Entry(
            at=_utc(r.at),
            kind=r.kind,
            message=r.message,
            model=r.model,
            version=r.version,
            deployment_id=r.deployment_id,
            detail=r.detail,
        )
        for r in rows
    ]
    if kind in (None, "rollout"):
        entries += _rollout_entries(session, device_id, limit)
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def prune(engine: Engine, *, now: datetime, keep_s: int) -> int:
    """Drop entries older than ``keep_s``; how many."""
    with Session(engine) as session:
        gone = session.exec(
            delete(DeviceEvent).where(col(DeviceEvent.at) < now - timedelta(seconds=keep_s))
        )
        session.commit()
        return int(gone.rowcount or 0)
