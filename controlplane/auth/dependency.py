"""The FastAPI dependency on ``api_router`` that authenticates and authorizes requests.

It reads ``Authorization: Bearer <token>``, looks the token's SHA-256 up (revoked tokens
do not count) and compares the token's role with what the route needs
(:func:`controlplane.auth.policy.required_role`, by method and path, so routes added
later are covered without further work; the path is the one the router matched, so
only a route under ``/api/v1/blobs/`` can be reached by an exempt read). Refusals are ``401`` (with
``WWW-Authenticate: Bearer``) or ``403``, each with a one-line ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from controlplane.audit.context import Actor, actor_of, note_caller
from controlplane.auth.policy import required_role
from controlplane.auth.tokens import MAX_TOKEN_LEN, Role
from controlplane.crud.tokens import find_token, touch_token
from controlplane.deps import Services, ServicesDep

MISSING = "missing bearer token"
INVALID = "invalid or revoked token"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """Who made the request: the token's id, name and role (None: an exempt route)."""

    token_id: int | None
    name: str | None
    role: Role | None


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None if there is none."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def api_path(request: Request) -> str:
    """The request path as the router matched it (without a proxy's ``root_path``)."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


async def authorize(request: Request, services: ServicesDep) -> Caller:
    """Refuse the request unless its token's role may do it; who the caller is. An
    exempt route (blob downloads) is answered here, on the event loop; a token is looked
    up in the database in a worker thread."""
    path = api_path(request)
    needed = required_role(request.method, path)
    if needed is None:
        return Caller(token_id=None, name=None, role=None)
    return await anyio.to_thread.run_sync(_check_token, request, services, path, needed)


def _check_token(request: Request, services: Services, path: str, needed: Role) -> Caller:
    token = bearer_token(request)
    if token is None:
        raise HTTPException(401, MISSING, headers=_CHALLENGE)
    if len(token) > MAX_TOKEN_LEN:
        raise HTTPException(401, INVALID, headers=_CHALLENGE)
    with Session(services.engine, expire_on_commit=False) as session:
        row = find_token(session, token=token)
        if row is None:
            raise HTTPException(401, INVALID, headers=_CHALLENGE)
        touch_token(session, row=row)
        assert row.id is not None
        caller = Caller(token_id=row.id, name=row.name, role=Role(row.role))
    assert caller.role is not None
    note_caller(request, row.name, caller.role.value)  # the audit trail's who, refused or not
    if not caller.role.allows(needed):
        raise HTTPException(403, f"role {caller.role.value} may not {request.method} {path}")
    return caller


CallerDep = Annotated[Caller, Depends(authorize)]


async def request_actor(request: Request, caller: CallerDep) -> Actor | None:
    """Who made an API request, as rollout history names them (None: an exempt route)."""
    if caller.name is None or caller.role is None:
        return None
    return actor_of(request, caller.name, caller.role.value)


ActorDep = Annotated[Actor | None, Depends(request_actor)]
