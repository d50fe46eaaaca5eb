"""``/fleets``: named groups of devices that deployments target, and their backend pins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from controlplane import crud
from controlplane.commands import reissue_commands
from controlplane.deps import PublisherDep, SessionDep, SignerDep
from controlplane.schemas import FleetCreate, FleetPublic, PinResult, PinUpdate
from controlplane.views import fleet_public
from protocol import NAME_PATTERN

router = APIRouter(prefix="/fleets", tags=["fleets"])

FleetName = Annotated[str, PathParam(pattern=NAME_PATTERN)]


@router.post("", status_code=201, responses={200: {"description": "the fleet already exists"}})
def create_fleet(body: FleetCreate, response: Response, session: SessionDep) -> FleetPublic:
    fleet, created = crud.get_or_create_fleet(session, name=body.name)
    session.commit()
    if not created:
        response.status_code = 200
    _, count = crud.get_fleet(session, name=fleet.name)
    return fleet_public(fleet, count)


@router.get("")
def list_fleets(session: SessionDep) -> list[FleetPublic]:
    return [fleet_public(f, n) for f, n in crud.list_fleets(session)]


@router.get("/{name}", responses={404: {"description": "unknown fleet"}})
def get_fleet(name: FleetName, session: SessionDep) -> FleetPublic:
    """One fleet (``edgectl`` checks the fleet exists before uploading a bundle)."""
    fleet, count = crud.get_fleet(session, name=name)
    return fleet_public(fleet, count)


@router.put(
    "/{name}/pin",
    responses={
        404: {"description": "unknown fleet"},
        503: {"description": "the trust document does not certify this control plane's key"},
    },
)
def pin_fleet(
    name: FleetName,
    body: PinUpdate,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
) -> PinResult:
    """Pin a backend for every device of the fleet (null removes the pin); with
    ``model``, for that model only (over the fleet's pin for every model). Devices whose
    own pins do not override it get a new signed command carrying it."""
    signer.check_ready(session)
    fleet, device_ids = crud.set_fleet_pin(
        session, name=name, backend=body.backend, model=body.model
    )
    reissued = reissue_commands(session, signer, publisher, device_ids=device_ids)
    backend = (fleet.model_pins or {}).get(body.model) if body.model else fleet.pinned_backend
    return PinResult(fleet=fleet.name, model=body.model, backend=backend, reissued=reissued)
