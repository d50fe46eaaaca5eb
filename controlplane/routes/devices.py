"""``/devices``: what each device last reported (devices register themselves over MQTT),
their labels, their backend pins and re-selections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from controlplane import crud
from controlplane.commands import reissue_commands
from controlplane.crud.labels import update_labels
from controlplane.deps import PublisherDep, SessionDep, SignerDep
from controlplane.errors import InvalidRequest, NotFound
from controlplane.paging import DEFAULT_LIMIT, MAX_LIMIT, DeviceFilter, devices_page
from controlplane.schemas import (
    DevicePublic,
    LabelsUpdate,
    PinResult,
    PinUpdate,
    ReselectRequest,
    ReselectResult,
)
from controlplane.selectors import SELECTOR_PATTERN, parse_selector
from controlplane.views import devices_public
from protocol import NAME_PATTERN

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceId = Annotated[str, PathParam(pattern=NAME_PATTERN)]


@router.get("", responses={400: {"description": "malformed selector"}})
def list_devices(
    request: Request,
    response: Response,
    session: SessionDep,
    fleet: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=32, description="e.g. active, failed")] = None,
    version: Annotated[
        str | None, Query(max_length=128, description="the version it serves")
    ] = None,
    online: bool | None = None,
    profile: Annotated[
        str | None, Query(max_length=128, description="its hardware profile")
    ] = None,
    q: Annotated[str | None, Query(max_length=128, description="a part of its id")] = None,
    selector: Annotated[
        str | None,
        # the pattern is documented, and checked by parse_selector (its message says
        # which term is wrong, where FastAPI's would only quote the pattern)
        Query(
            description="labels that must all match: k=v,k2=v2",
            json_schema_extra={"pattern": SELECTOR_PATTERN},
        ),
    ] = None,
    after: Annotated[
        str | None, Query(max_length=128, description="the last device id of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> list[DevicePublic]:
    """Devices sorted by id (those of ``fleet``, in ``status``, serving ``version``,
    ``online`` or not, of hardware ``profile``, matching ``selector``, with ``q`` in their
    id: every filter given), a page at a time (``controlplane.paging``): when there are
    more, the ``Link`` header (``rel="next"``) names the next page and ``X-Next-After``
    its cursor."""
    try:
        wanted = parse_selector(selector)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    wanted_devices = DeviceFilter(
        fleet=fleet,
        status=status,
        version=version,
        online=online,
        profile=profile,
        selector=wanted,
        search=q,
    )
    page = devices_page(session, wanted_devices, after=after, limit=limit)
    if page.next_after is not None:
        url = request.url.include_query_params(after=page.next_after, limit=limit)
        response.headers["Link"] = f'<{url}>; rel="next"'
        response.headers["X-Next-After"] = page.next_after
    return page.devices


@router.get("/{device_id}", responses={404: {"description": "unknown device"}})
def get_device(device_id: str, session: SessionDep) -> DevicePublic:
    found = devices_public(session, device_id=device_id)
    if not found:
        raise NotFound(f"unknown device {device_id!r}")
    return found[0]


@router.patch(
    "/{device_id}/labels",
    responses={
        400: {"description": "a key both set and removed, or too many labels"},
        404: {"description": "unknown device"},
    },
)
def label_device(device_id: DeviceId, body: LabelsUpdate, session: SessionDep) -> DevicePublic:
    """Set and remove labels of one device. Rollouts take their targets when created,
    so a label change affects the rollouts created after it (and which settled
    deployment a device registering later receives)."""
    update_labels(session, device_id=device_id, set_labels=body.set, remove=body.remove)
    return devices_public(session, device_id=device_id)[0]


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
    """Pin a backend for one device, over its fleet's pins (null removes it); with
    ``model``, for that model only (over the device's pin for every model). The device
    gets a new signed command if what it carries changed."""
    signer.check_ready(session)
    device = crud.set_device_pin(
        session, device_id=device_id, backend=body.backend, model=body.model
    )
    reissued = reissue_commands(session, signer, publisher, device_ids=[device.id])
    backend = (device.model_pins or {}).get(body.model) if body.model else device.pinned_backend
    return PinResult(device=device.id, model=body.model, backend=backend, reissued=reissued)


@router.post(
    "/{device_id}/reselect",
    responses={
        404: {"description": "unknown device"},
        503: {"description": "the trust document does not certify this control plane's key"},
    },
)
def reselect_device(
    device_id: DeviceId,
    body: ReselectRequest,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
) -> ReselectResult:
    """Ask the device to measure the backend of ``model`` (default: every model) again:
    its next command carries a higher re-selection counter for it; the agent drops its
    cached choice and selects again, the model serving meanwhile. A pinned model stays
    on its pin."""
    signer.check_ready(session)
    counter = crud.request_reselect(session, device_id=device_id, model=body.model)
    reissued = reissue_commands(session, signer, publisher, device_ids=[device_id])
    return ReselectResult(device=device_id, model=body.model, reselect=counter, reissued=reissued)
