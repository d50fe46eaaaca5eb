"""What ``/api/v1/tokens`` accepts and answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from controlplane.auth.tokens import Role
from controlplane.schemas import UtcDatetime

TokenName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,127}$", strip_whitespace=True)
]


class TokenCreate(BaseModel):
    """``POST /tokens``: a name to recognise the token by, and its role."""

    name: TokenName
    role: Role


class TokenPublic(BaseModel):
    """A token as listed: never the token itself, only its first characters."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    prefix: str
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None


class TokenCreated(TokenPublic):
    """The answer to ``POST /tokens``: the only time the token is shown."""

    token: str


class WhoAmI(BaseModel):
    """``GET /whoami``: the token the request was made with."""

    id: int
    name: str
    role: Role
