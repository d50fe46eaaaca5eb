"""Each device's latest heartbeat figures, one heartbeat at a time or a batch at once.

One rule decides what is kept (``keeps``): agents spool heartbeats while offline and
deliver them late (and, with shared subscriptions, possibly out of order across
replicas), so one measured before the kept one only marks the device as seen, it never
replaces newer figures. A heartbeat is placed at the device's time but never later than
when it arrived, so one dated in the future cannot hold back the ones after it; a kept
time in the future (stored before that rule) is disregarded.

- ``apply_heartbeat``: one heartbeat on the ORM row (the path of one report);
- ``HeartbeatRows``: the ingest batch path, for heartbeats only (most of what a fleet
  sends). Its devices' rows are read and locked with the four columns it needs
  (``lock``), and written back at once (``write``; on PostgreSQL copied into a temporary
  table joined by one UPDATE, elsewhere an executemany per set of columns changed): no
  ORM objects, no JSON column it does not change read or written.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from controlplane import bulk
from controlplane.models import Device, utcnow
from controlplane.schemas import as_utc
from protocol import Heartbeat

_DEVICE = Device.__table__  # type: ignore[attr-defined]


def keeps(kept: datetime | None, heartbeat: Heartbeat, now: datetime) -> datetime | None:
    """Where a heartbeat arriving ``now`` is placed if its figures replace those kept
    (measured at ``kept``); None if it only marks the device as seen."""
    kept = as_utc(kept) if kept is not None else None  # SQLite's are naive
    at = min(heartbeat.at, now)
    return at if kept is None or kept > now or at >= kept else None


_NOT_KEPT = {"protocol_version", "device_id"}


def figures(heartbeat: Heartbeat) -> dict[str, Any]:
    """What ``Device.last_heartbeat`` keeps of a heartbeat."""
    return heartbeat.model_dump(mode="json", exclude=_NOT_KEPT)


def figures_json(heartbeat: Heartbeat) -> str:
    """``figures`` as JSON text (pydantic's serializer, straight from the model)."""
    return heartbeat.model_dump_json(exclude=_NOT_KEPT)


def apply_heartbeat(
    session: Session,
    *,
    device_id: str,
    heartbeat: Heartbeat,
    now: datetime | None = None,
    locked: Device | None = None,
) -> bool:
    """Keep a device's latest heartbeat figures (``keeps``); False if the device is not
    registered. The caller commits."""
    now = now or utcnow()
    # ``locked``: ingestion loaded and locked it in this transaction to authenticate the
    # report (moving its replay window); reading it again would flush that and re-select
    device = locked or session.get(Device, device_id, with_for_update=True)
    if device is None:
        return False
    at = keeps(device.last_heartbeat_at, heartbeat, now)
    if at is not None:
        device.last_heartbeat = figures(heartbeat)
        device.last_heartbeat_at = at
    device.last_seen_at = now
    session.add(device)
    return True


@dataclass
class HeartbeatRow:
    """What the batch path reads of a device's row, and what it will write back."""

    id: str
    key_id: str | None
    #: moved by report authentication (``ReportAuthenticator.open``)
    report_windows: dict[str, list[int]]
    last_heartbeat_at: datetime | None
    read_windows: dict[str, list[int]] = field(default_factory=dict)  # as read
    #: the heartbeat whose figures replace those kept (None: none does)
    last_heartbeat: Heartbeat | None = None
    last_seen_at: datetime | None = None

    def apply(self, heartbeat: Heartbeat, now: datetime) -> bool:
        at = keeps(self.last_heartbeat_at, heartbeat, now)
        if at is not None:
            self.last_heartbeat, self.last_heartbeat_at = heartbeat, at
        self.last_seen_at = now
        return True

    def changes(self) -> dict[str, Any]:
        """The columns to write (none: nothing changed), by name; ``last_heartbeat`` as
        the ``Heartbeat`` whose figures it keeps."""
        out: dict[str, Any] = {}
        if self.report_windows != self.read_windows:
            out["report_windows"] = self.report_windows  # a seq spent, even if refused
        if self.last_seen_at is not None:
            out["last_seen_at"] = self.last_seen_at
        if self.last_heartbeat is not None:
            out["last_heartbeat"] = self.last_heartbeat
            out["last_heartbeat_at"] = self.last_heartbeat_at
        return out


@dataclass
class HeartbeatRows:
    """The rows of a batch of heartbeats, locked in its transaction."""

    rows: dict[str, HeartbeatRow] = field(default_factory=dict)

    @classmethod
    def lock(cls, session: Session, device_ids: Collection[str]) -> HeartbeatRows:
        """Read and lock (``FOR UPDATE``, in id order, like every ingest transaction) the
        rows of ``device_ids``; a device that is not registered is left out."""
        c = _DEVICE.c
        query = (
            select(c.id, c.key_id, c.report_windows, c.last_heartbeat_at)
            .where(c.id.in_(sorted(device_ids)))
            .order_by(c.id)
            .with_for_update()
        )
        found = {}
        for device_id, key_id, windows, at in session.execute(query):
            windows = dict(windows or {})
            found[device_id] = HeartbeatRow(device_id, key_id, windows, at, dict(windows))
        return cls(found)

    def write(self, session: Session) -> None:
        """Write back what changed: on PostgreSQL copied into a temporary table joined by
        one UPDATE, elsewhere one UPDATE executemany per set of columns changed."""
        changed = [(row.id, changes) for row in self.rows.values() if (changes := row.changes())]
        if not changed:
            return
        if bulk.fast(session.connection()):
            _update_from_staged(session, changed)
            return
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for device_id, changes in changed:
            if (beat := changes.get("last_heartbeat")) is not None:
                changes["last_heartbeat"] = figures(beat)
            values = {f"v_{name}": value for name, value in changes.items()}
            shapes.setdefault(tuple(changes), []).append({"b_id": device_id, **values})
        for columns, params in shapes.items():
            statement = (
                update(_DEVICE)
                .where(_DEVICE.c.id == bindparam("b_id"))
                .values({name: bindparam(f"v_{name}") for name in columns})
            )
            session.execute(statement, params)


#: The batch's changes, copied into a temporary table and joined by one UPDATE; a column a
#: row does not change is NULL there and keeps its value (none is ever written NULL here).
STAGED = "edgefleet_heartbeat_rows"
STAGED_COLUMNS = "id text, windows json, seen timestamptz, figures json, at timestamptz"
UPDATE_FROM_STAGED = f"""
    UPDATE device AS d SET
        report_windows = COALESCE(v.windows, d.report_windows),
        last_seen_at = COALESCE(v.seen, d.last_seen_at),
        last_heartbeat = COALESCE(v.figures, d.last_heartbeat),
        last_heartbeat_at = COALESCE(v.at, d.last_heartbeat_at)
    FROM {STAGED} AS v
    WHERE d.id = v.id
"""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _update_from_staged(session: Session, changed: list[tuple[str, dict[str, Any]]]) -> None:
    connection = session.connection()
    table = bulk.staged(connection, STAGED, STAGED_COLUMNS)
    rows = (
        (
            device_id,
            _json(c.get("report_windows")),
            c.get("last_seen_at"),
            figures_json(beat) if (beat := c.get("last_heartbeat")) else None,
            c.get("last_heartbeat_at"),
        )
        for device_id, c in changed
    )
    bulk.copy_rows(connection, table, ("id", "windows", "seen", "figures", "at"), rows)
    connection.exec_driver_sql(UPDATE_FROM_STAGED)
