"""Writes for API tokens (keyword-only; see :mod:`controlplane.crud`).

Only a token's SHA-256 is stored; the token itself exists in the answer to its creation
and nowhere else. ``last_used_at`` is written at most once per ``TOUCH_INTERVAL`` per
token, so authenticating a request costs one indexed read, not a write.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from controlplane.auth.tokens import Role, display_prefix, hash_token, new_token
from controlplane.errors import Conflict, NotFound
from controlplane.models import ApiToken, utcnow
from controlplane.schemas import as_utc

logger = logging.getLogger(__name__)

TOUCH_INTERVAL = timedelta(minutes=1)


def create_token(
    session: Session, *, name: str, role: Role, token: str | None = None
) -> tuple[ApiToken, str]:
    """Store a new token (``token``, or a fresh random one); (row, the token). Committed."""
    token = token or new_token()
    row = ApiToken(
        name=name, role=role.value, token_sha256=hash_token(token), prefix=display_prefix(token)
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    logger.info("API token %s (%s, %s) created", row.id, name, role.value)
    return row, token


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, revoked ones too, oldest first."""
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.id))).all())


def find_token(session: Session, *, token: str) -> ApiToken | None:
    """The live (not revoked) token row for ``token``, or None."""
    digest = hash_token(token)
    row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == digest)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_sha256, digest):  # pragma: no cover - belt and braces
        return None
    return row


def touch_token(session: Session, *, row: ApiToken, now: datetime | None = None) -> None:
    """Record that ``row`` was used, unless that was recorded under a minute ago."""
    now = now or utcnow()
    if row.last_used_at is not None and now - as_utc(row.last_used_at) < TOUCH_INTERVAL:
        return
    row.last_used_at = now
    session.add(row)
    session.commit()


def revoke_token(session: Session, *, token_id: int) -> ApiToken:
    """Revoke token ``token_id`` (idempotent). Conflict: it is the last live admin token."""
    row = session.get(ApiToken, token_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"unknown token {token_id}")
    if row.revoked_at is not None:
        return row
    if row.role == Role.ADMIN.value:
        admins = session.exec(
            select(ApiToken.id).where(
                ApiToken.role == Role.ADMIN.value, col(ApiToken.revoked_at).is_(None)
            )
        ).all()
        if len(admins) <= 1:
            raise Conflict(
                f"token {token_id} is the last admin token: create another admin token first"
            )
    row.revoked_at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    logger.info("API token %s (%s) revoked", row.id, row.name)
    return row
