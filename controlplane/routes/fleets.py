"""``/fleets``: named groups of devices that deployments target."""

from __future__ import annotations

from fastapi import APIRouter, Response

from controlplane import crud
from controlplane.deps import SessionDep
from controlplane.errors import NotFound
from controlplane.schemas import FleetCreate, FleetPublic

router = APIRouter(prefix="/fleets", tags=["fleets"])


@router.post("", status_code=201, responses={200: {"description": "the fleet already exists"}})
def create_fleet(body: FleetCreate, response: Response, session: SessionDep) -> FleetPublic:
    fleet, created = crud.get_or_create_fleet(session, name=body.name)
    session.commit()
    if not created:
        response.status_code = 200
    counts = dict((f.name, n) for f, n in crud.list_fleets(session))
    return FleetPublic(
        name=fleet.name, created_at=fleet.created_at, device_count=counts.get(fleet.name, 0)
    )


@router.get("")
def list_fleets(session: SessionDep) -> list[FleetPublic]:
    return [
        FleetPublic(name=f.name, created_at=f.created_at, device_count=n)
        for f, n in crud.list_fleets(session)
    ]


@router.get("/{name}")
def get_fleet(name: str, session: SessionDep) -> FleetPublic:
    for fleet in list_fleets(session):
        if fleet.name == name:
            return fleet
    raise NotFound(f"unknown fleet {name!r}")
