"""Pages of devices, filtered in the database, and a fleet summary that loads no device rows.

A fleet of 100,000 devices must not be read whole on each request. ``GET /devices`` and
the dashboard answer at most ``limit`` devices (default ``DEFAULT_LIMIT``, at most
``MAX_LIMIT``), sorted by id, after the id ``after`` (keyset paging: an index range scan,
however deep the page, never ``OFFSET``); when there are more, the API's ``Link`` header
names the next page (``rel="next"``, RFC 8288) and ``X-Next-After`` the cursor.

:class:`DeviceFilter` narrows a page: fleet, status, version, online, hardware profile,
label selector and a search in the device id, all ``WHERE`` terms of one query. Each of
fleet, status, version, online and profile has an index led by its column and ending in
the id (``ix_device_<column>_id``), so a filtered page is an index range scan in id order
too; a label or search term is checked on the rows that scan reads.

``fleet_summary`` counts devices per fleet in the database (one ``GROUP BY``): what the
dashboard's overview shows, without loading a device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Integer, case, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from controlplane.models import Device, Fleet
from controlplane.schemas import DevicePublic
from controlplane.views import device_public

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000


@dataclass(frozen=True)
class DeviceFilter:
    """What a page of devices is narrowed to (None or empty: not narrowed)."""

    fleet: str | None = None
    status: str | None = None
    #: the version it serves (``Device.active_version``)
    version: str | None = None
    online: bool | None = None
    #: its hardware profile (``Device.profile``)
    profile: str | None = None
    #: labels that must all match
    selector: Mapping[str, str] = field(default_factory=dict)
    #: a part of the device id (any case)
    search: str | None = None

    def terms(self) -> list[ColumnElement[bool]]:
        """The ``WHERE`` terms of this filter."""
        found: list[ColumnElement[bool]] = []
        for column, value in (
            (col(Device.fleet), self.fleet),
            (col(Device.status), self.status),
            (col(Device.active_version), self.version),
            (col(Device.profile), self.profile),
        ):
            if value is not None:
                found.append(column == value)
        if self.online is not None:
            found.append(col(Device.online).is_(self.online))
        for key, value in sorted(self.selector.items()):
            found.append(col(Device.labels)[key].as_string() == value)
        if self.search:
            found.append(col(Device.id).icontains(self.search, autoescape=True))
        return found

    def is_empty(self) -> bool:
        return not self.terms()


@dataclass(frozen=True)
class DevicePage:
    devices: list[DevicePublic]
    #: the cursor of the next page (the last id of this one); None: this is the last
    next_after: str | None


def page_query(wanted: DeviceFilter, *, after: str | None, limit: int) -> SelectOfScalar[Device]:
    """The query of one page of devices (``limit`` rows; the pager asks one more to know
    whether another page follows): what ``EXPLAIN`` is checked on."""
    statement = select(Device).where(*wanted.terms()).order_by(col(Device.id)).limit(limit)
    if after is not None:
        statement = statement.where(col(Device.id) > after)
    return statement


def devices_page(
    session: Session,
    wanted: DeviceFilter | None = None,
    *,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> DevicePage:
    """Up to ``limit`` devices matching ``wanted`` with ids after ``after``, sorted by id,
    each with its effective pin."""
    devices = session.exec(page_query(wanted or DeviceFilter(), after=after, limit=limit + 1))
    found = list(devices.all())
    more = len(found) > limit
    found = found[:limit]
    fleets = {f.name: f for f in _fleets(session, {d.fleet for d in found})}
    public = [
        device_public(
            d,
            fleets[d.fleet].pinned_backend if d.fleet in fleets else None,
            fleets[d.fleet].model_pins if d.fleet in fleets else None,
        )
        for d in found
    ]
    return DevicePage(public, public[-1].id if more and public else None)


def _fleets(session: Session, names: set[str]) -> list[Fleet]:
    if not names:
        return []
    return list(session.exec(select(Fleet).where(col(Fleet.name).in_(sorted(names)))).all())


def fleet_exists(session: Session, name: str) -> bool:
    """Whether ``name`` is a fleet (every device's fleet has its row)."""
    return session.get(Fleet, name) is not None


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
