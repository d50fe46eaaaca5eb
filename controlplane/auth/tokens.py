"""API tokens: roles, generation, hashing and the display prefix (pure, no database).

A token is ``efk_`` followed by 43 URL-safe characters (``secrets.token_urlsafe(32)``,
256 bits). Only its SHA-256 (hex) is stored, with the first characters as a prefix to
tell tokens apart in listings.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from enum import StrEnum

TOKEN_PREFIX = "efk_"
#: Characters of a token shown in listings (``efk_`` and 8 more).
DISPLAY_PREFIX_LEN = 12
#: A bootstrap token given by the operator must be at least this long.
MIN_TOKEN_LEN = 16
MAX_TOKEN_LEN = 256
#: RFC 6750 ``b64token``: what a bearer token may contain.
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")


class Role(StrEnum):
    """Who may do what: admin > operator > viewer."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def new_token() -> str:
    """A fresh random token: ``efk_`` + 256 bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 (lowercase hex) stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of ``token``, safe to show and store."""
    return token[:DISPLAY_PREFIX_LEN]


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be used as a bearer token (one line), or None if it can."""
    if len(token) < MIN_TOKEN_LEN:
        return f"is too short (at least {MIN_TOKEN_LEN} characters)"
    if len(token) > MAX_TOKEN_LEN:
        return f"is too long (at most {MAX_TOKEN_LEN} characters)"
    if not _TOKEN_CHARS.match(token):
        return "may contain only letters, digits and . _ ~ + / = -"
    return None
