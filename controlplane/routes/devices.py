"""``/devices``: what each device last reported (devices register themselves over MQTT),
and their backend pins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from controlplane import crud
from controlplane.commands import reissue_commands
from controlplane.deps import PublisherDep, SessionDep, SignerDep
from controlplane.errors import NotFound
from controlplane.schemas import DevicePublic, PinResult, PinUpdate
from controlplane.views import devices_public
from protocol import NAME_PATTERN

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceId = Annotated[str, PathParam(pattern=NAME_PATTERN)]


@router.get("")
def list_devices(session: SessionDep, fleet: str | None = None) -> list[DevicePublic]:
    return devices_public(session, fleet=fleet)


@router.get("/{device_id}", responses={404: {"description": "unknown device"}})
def get_device(device_id: str, session: SessionDep) -> DevicePublic:
    found = devices_public(session, device_id=device_id)
    if not found:
        raise NotFound(f"unknown device {device_id!r}")
    return found[0]


@router.put(
    "/{device_id}/pin",
    responses={
        404: {"description": "unknown device"},
        503: {"description": "the trust document does not certify this control plane's key"},
    },
)
def pin_device(
    device_id: DeviceId,
    body: PinUpdate,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
) -> PinResult:
    """Pin a backend for one device, over its fleet's pin (null removes it); the device
    gets a new signed command if what it carries changed."""
    signer.check_ready(session)
    device = crud.set_device_pin(session, device_id=device_id, backend=body.backend)
    reissued = reissue_commands(session, signer, publisher, device_ids=[device.id])
    return PinResult(device=device.id, backend=device.pinned_backend, reissued=reissued)
