"""``/tokens`` (admin only): create, list and revoke API tokens; ``/whoami`` (any role)."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.auth.dependency import CallerDep
from controlplane.auth.schemas import TokenCreate, TokenCreated, TokenPublic, WhoAmI
from controlplane.crud import tokens as crud_tokens
from controlplane.deps import RowId, SessionDep

router = APIRouter(tags=["auth"])


@router.post("/tokens", status_code=201)
def create_token(body: TokenCreate, session: SessionDep) -> TokenCreated:
    """A new token with ``role``; the answer is the only place the token appears."""
    row, token = crud_tokens.create_token(session, name=body.name, role=body.role)
    return TokenCreated.model_validate({**row.model_dump(), "token": token})


@router.get("/tokens")
def list_tokens(session: SessionDep) -> list[TokenPublic]:
    """Every token (revoked ones with ``revoked_at``), without the tokens themselves."""
    return [TokenPublic.model_validate(row) for row in crud_tokens.list_tokens(session)]


@router.delete(
    "/tokens/{token_id}",
    responses={404: {"description": "unknown token"}, 409: {"description": "the last admin token"}},
)
def revoke_token(token_id: RowId, session: SessionDep) -> TokenPublic:
    """Revoke a token: it stops working at once. 409 for the last admin token."""
    return TokenPublic.model_validate(crud_tokens.revoke_token(session, token_id=token_id))


@router.get("/whoami")
def whoami(caller: CallerDep) -> WhoAmI:
    """The name and role of the token this request carries."""
    assert caller.token_id is not None and caller.name is not None and caller.role is not None
    return WhoAmI(id=caller.token_id, name=caller.name, role=caller.role)
