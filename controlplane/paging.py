"""Pages of devices, and a fleet summary that loads no device rows.

A fleet of 100,000 devices must not be read whole on each request. ``GET /devices``
answers at most ``limit`` devices (default ``DEFAULT_LIMIT``, at most ``MAX_LIMIT``),
sorted by id, after the id ``after`` (keyset paging: an index range scan, however deep
the page); when there are more, its ``Link`` header names the next page
(``rel="next"``, RFC 8288) and ``X-Next-After`` the cursor. A label selector is matched
on the rows read, so a page may read more rows than it returns (in chunks of
``CHUNK``), never the whole table at once.

``fleet_summary`` counts devices per fleet in the database (one ``GROUP BY``): what the
dashboard's overview shows, without loading a device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, case, func
from sqlmodel import Session, col, select

from controlplane.models import Device, Fleet
from controlplane.schemas import DevicePublic
from controlplane.selectors import matches
from controlplane.views import device_public

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
CHUNK = 1000


@dataclass(frozen=True)
class DevicePage:
    devices: list[DevicePublic]
    #: the cursor of the next page (the last id of this one); None: this is the last
    next_after: str | None


def devices_page(
    session: Session,
    *,
    fleet: str | None = None,
    selector: Mapping[str, str] | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> DevicePage:
    """Up to ``limit`` devices (of ``fleet``, matching ``selector``) with ids after
    ``after``, sorted by id, each with its effective pin."""
    found: list[DevicePublic] = []
    cursor = after
    while True:
        statement = (
            select(Device, Fleet.pinned_backend, Fleet.model_pins)
            .join(Fleet, col(Fleet.name) == col(Device.fleet), isouter=True)
            .order_by(col(Device.id))
            .limit(CHUNK if selector else limit + 1)
        )
        if fleet is not None:
            statement = statement.where(col(Device.fleet) == fleet)
        if cursor is not None:
            statement = statement.where(col(Device.id) > cursor)
        rows = session.exec(statement).all()
        for device, pin, model_pins in rows:
            if len(found) == limit:
                return DevicePage(found, found[-1].id)
            if matches(device.labels or {}, selector or {}):
                found.append(device_public(device, pin, model_pins))
        if not selector or len(rows) < CHUNK:
            return DevicePage(found, None)
        cursor = rows[-1][0].id


@dataclass(frozen=True)
class FleetCounts:
    fleet: str
    devices: int
    online: int
    serving: int
    failed: int


def fleet_summary(session: Session) -> list[FleetCounts]:
    """Per fleet with devices: how many, online, serving a model, failed (one query)."""

    def total(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)

    statement = (
        select(  # type: ignore[call-overload]
            col(Device.fleet),
            func.count(),
            total(col(Device.online).is_(True)),
            total(col(Device.active_model).is_not(None)),
            total(col(Device.status) == "failed"),
        )
        .group_by(col(Device.fleet))
        .order_by(col(Device.fleet))
    )
    return [FleetCounts(*row) for row in session.exec(statement).all()]
