"""Writes for operator backend pins (keyword-only; see :mod:`controlplane.crud`).

A pin is a backend candidate key (``protocol.BackendKey``) stored on a fleet or a
device, for every model or (``model``) for one model by name; None removes it. What a
device's commands carry for each model is derived from them by
:mod:`controlplane.pin_rules`. Each function
commits and returns the ids of the devices whose commands the change may affect; the
caller re-issues them (:func:`controlplane.commands.reissue_commands`).
"""

from __future__ import annotations

import logging

from sqlmodel import Session, col, select

from controlplane.errors import NotFound
from controlplane.models import Device, Fleet

logger = logging.getLogger(__name__)


def _set_pin(
    session: Session, row: Fleet | Device, backend: str | None, what: str, model: str | None
) -> None:
    """Store ``backend`` as the row's pin, for ``model`` or every model (committed); log
    a change."""
    if model is None:
        before = row.pinned_backend
        row.pinned_backend = backend
    else:
        pins = dict(row.model_pins or {})  # a new dict: the JSON column sees the change
        before = pins.pop(model, None)
        if backend is not None:
            pins[model] = backend
        row.model_pins = pins
        what = f"{what} model {model}"
    session.add(row)
    session.commit()
    session.refresh(row)
    if before != backend:
        logger.info("%s backend pin: %s -> %s", what, before or "none", backend or "none")


def set_fleet_pin(
    session: Session, *, name: str, backend: str | None, model: str | None = None
) -> tuple[Fleet, list[str]]:
    """Pin (or, with None, unpin) ``backend`` for fleet ``name``, for ``model`` or every
    model: (fleet, its device ids)."""
    fleet = session.get(Fleet, name, with_for_update=True, populate_existing=True)
    if fleet is None:
        raise NotFound(f"unknown fleet {name!r}")
    _set_pin(session, fleet, backend, f"fleet {name}", model)
    ids = session.exec(select(Device.id).where(Device.fleet == name).order_by(col(Device.id))).all()
    return fleet, list(ids)


def set_device_pin(
    session: Session, *, device_id: str, backend: str | None, model: str | None = None
) -> Device:
    """Pin (or, with None, unpin) ``backend`` for one device, for ``model`` or every
    model (committed)."""
    device = session.get(Device, device_id, with_for_update=True, populate_existing=True)
    if device is None:
        raise NotFound(f"unknown device {device_id!r}")
    _set_pin(session, device, backend, f"device {device_id}", model)
    return device
