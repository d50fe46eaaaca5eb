"""``/trust``: the root-signed trust chain (served to agents, updated by operators)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from sqlmodel import Session

from controlplane.commands import publish_commands
from controlplane.deps import Services, ServicesDep, SessionDep, TrustDep
from controlplane.errors import NotFound, PayloadTooLarge
from controlplane.openapi import inline_schema
from controlplane.schemas import TrustPublic
from controlplane.trust import certifies
from protocol import SignedEnvelope

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/trust", tags=["trust"])

MAX_TRUST_BYTES = 1024 * 1024
_JSON: dict[str, Any] = {"content": {"application/json": {}}}


_ENVELOPE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the DSSE envelope of the next trust document, as signed",
        "content": {"application/json": {"schema": inline_schema(SignedEnvelope)}},
    }
}
Version = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


@router.get("", response_class=Response, responses={200: _JSON})
def get_latest(session: SessionDep, trust: TrustDep) -> Response:
    """The latest trust document: its DSSE envelope, exactly as signed and published."""
    return Response(trust.current(session).raw(), media_type="application/json")


@router.get(
    "/{version}",
    response_class=Response,
    responses={200: _JSON, 404: {"description": "unknown version"}},
)
def get_version(version: Version, session: SessionDep, trust: TrustDep) -> Response:
    """One version of the chain (agents fetch the versions they lack)."""
    raw = trust.raw(session, version)
    if raw is None:
        raise NotFound(f"unknown trust document version {version}")
    return Response(raw, media_type="application/json")


@router.post(
    "",
    status_code=201,
    responses={
        200: {"description": "this is already the current version"},
        400: {"description": "malformed, or does not verify as an update of the current one"},
        409: {"description": "its version is not the current one plus one"},
    },
    openapi_extra=_ENVELOPE_BODY,
)
async def post_trust(request: Request, response: Response, services: ServicesDep) -> TrustPublic:
    """Accept the next trust version (body: its DSSE envelope), publish it, re-sign commands."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_TRUST_BYTES:
            raise PayloadTooLarge(f"a trust document is at most {MAX_TRUST_BYTES} bytes")
    answer = await anyio.to_thread.run_sync(_accept, services, bytes(raw))
    if not answer.created:
        response.status_code = 200
    return answer


def _accept(services: Services, raw: bytes) -> TrustPublic:
    signer = services.signer
    with Session(services.engine) as session:
        document, created = services.trust.update(session, raw)
        certified = certifies(document, signer.key_id)
        if created:
            logger.info("accepted trust document version %d", document.version)
            services.publisher.publish_trust(document.raw())
            if certified:
                sent = publish_commands(session, signer, services.publisher)
                logger.info(
                    "re-signed and published %d command(s) under v%d", sent, document.version
                )
            else:
                logger.error(
                    "control-plane key %s is not certified by trust document v%d: deployments "
                    "are refused until a trust document certifies it",
                    signer.key_id,
                    document.version,
                )
    return TrustPublic(
        version=document.version,
        expires=document.expires,
        roles={role.value: sorted(ids) for role, ids in document.roles.items()},
        revoked=sorted(document.revoked),
        control_plane_key=signer.key_id,
        control_plane_key_certified=certified,
        created=created,
    )
