"""``/devices``: what each device last reported (devices register themselves over MQTT)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import col, select

from controlplane.deps import SessionDep
from controlplane.errors import NotFound
from controlplane.models import Device
from controlplane.schemas import DevicePublic
from controlplane.views import device_public

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("")
def list_devices(session: SessionDep, fleet: str | None = None) -> list[DevicePublic]:
    statement = select(Device).order_by(col(Device.id))
    if fleet is not None:
        statement = statement.where(Device.fleet == fleet)
    return [device_public(d) for d in session.exec(statement).all()]


@router.get("/{device_id}", responses={404: {"description": "unknown device"}})
def get_device(device_id: str, session: SessionDep) -> DevicePublic:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"unknown device {device_id!r}")
    return device_public(device)
