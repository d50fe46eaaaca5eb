"""``/fleets``: named groups of devices that deployments target."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from controlplane import crud
from controlplane.deps import SessionDep
from controlplane.schemas import FleetCreate, FleetPublic
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
    return FleetPublic(name=fleet.name, created_at=fleet.created_at, device_count=count)


@router.get("")
def list_fleets(session: SessionDep) -> list[FleetPublic]:
    return [
        FleetPublic(name=f.name, created_at=f.created_at, device_count=n)
        for f, n in crud.list_fleets(session)
    ]


@router.get("/{name}", responses={404: {"description": "unknown fleet"}})
def get_fleet(name: FleetName, session: SessionDep) -> FleetPublic:
    """One fleet (``edgectl`` checks the fleet exists before uploading a bundle)."""
    fleet, count = crud.get_fleet(session, name=name)
    return FleetPublic(name=fleet.name, created_at=fleet.created_at, device_count=count)
