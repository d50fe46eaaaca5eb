"""Writes for operator backend pins (keyword-only; see :mod:`controlplane.crud`).

A pin is a backend candidate key (``protocol.BackendKey``) stored on a fleet or a
device; None removes it. What a device's commands carry is derived from both by
:func:`controlplane.desired.pinned_backend` (the device's pin wins). Each function
commits and returns the ids of the devices whose commands the change may affect; the
caller re-issues them (:func:`controlplane.commands.reissue_commands`).
"""

from __future__ import annotations

import logging

from sqlmodel import Session, col, select

from controlplane.errors import NotFound
from controlplane.models import Device, Fleet

logger = logging.getLogger(__name__)


def _set_pin(session: Session, row: Fleet | Device, backend: str | None, what: str) -> None:
    """Store ``backend`` as the row's pin (committed); log a change."""
    before = row.pinned_backend
    row.pinned_backend = backend
    session.add(row)
    session.commit()
    session.refresh(row)
    if before != backend:
        logger.info("%s backend pin: %s -> %s", what, before or "none", backend or "none")


def set_fleet_pin(session: Session, *, name: str, backend: str | None) -> tuple[Fleet, list[str]]:
    """Pin (or, with None, unpin) ``backend`` for fleet ``name``: (fleet, its device ids)."""
    fleet = session.get(Fleet, name, with_for_update=True, populate_existing=True)
    if fleet is None:
        raise NotFound(f"unknown fleet {name!r}")
    _set_pin(session, fleet, backend, f"fleet {name}")
    ids = session.exec(select(Device.id).where(Device.fleet == name).order_by(col(Device.id))).all()
    return fleet, list(ids)


def set_device_pin(session: Session, *, device_id: str, backend: str | None) -> Device:
    """Pin (or, with None, unpin) ``backend`` for one device (committed)."""
    device = session.get(Device, device_id, with_for_update=True, populate_existing=True)
    if device is None:
        raise NotFound(f"unknown device {device_id!r}")
    _set_pin(session, device, backend, f"device {device_id}")
    return device
