"""Writes for operator backend pins and re-selections (keyword-only; see
:mod:`controlplane.crud`).

``request_reselect`` raises a device's re-selection counter for one model or every model
(``Device.reselects``); its commands then carry the new ``ModelAssignment.reselect``
and the agent measures that model's backend again.

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
from controlplane.pin_rules import EVERY_MODEL, reselect_of

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


def request_reselect(session: Session, *, device_id: str, model: str | None = None) -> int:
    """Ask ``device_id`` to measure the backend of ``model`` (None: every model) again:
    raise its re-selection counter (committed); the counter ``model``'s commands will
    carry (for every model: the ``*`` counter)."""
    device = session.get(Device, device_id, with_for_update=True, populate_existing=True)
    if device is None:
        raise NotFound(f"unknown device {device_id!r}")
    counters = dict(device.reselects or {})  # a new dict: the JSON column sees the change
    key = model if model is not None else EVERY_MODEL
    counters[key] = int(counters.get(key, 0)) + 1
    device.reselects = counters
    session.add(device)
    session.commit()
    logger.info("device %s: re-selection %d asked for %s", device_id, counters[key], key)
    return reselect_of(counters, model) if model is not None else counters[key]
