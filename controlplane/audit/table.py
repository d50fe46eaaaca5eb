"""The ``auditentry`` table: one row per recorded write.

Indexes: ``at`` (``since`` filters), ``(target, id)`` and ``(token_name, id)`` (one
target's or one token's entries, newest first); the primary key lists all of them
newest first (ids grow with time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index
from sqlmodel import Field, SQLModel

#: Longest user agent, action, target and address kept (longer ones are cut).
UA_LEN = 200
ACTION_LEN = 64
TARGET_LEN = 300
ADDRESS_LEN = 64


class AuditEntry(SQLModel, table=True):
    __table_args__ = (
        Index("ix_auditentry_at", "at"),
        Index("ix_auditentry_target_id", "target", "id"),
        Index("ix_auditentry_token_name_id", "token_name", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=DateTime(timezone=True))
    #: the token's name and role (None: a failed sign-in names no token)
    token_name: str | None = Field(default=None, max_length=128)
    role: str | None = Field(default=None, max_length=16)
    #: ``api`` or ``dashboard``
    source: str = Field(max_length=16)
    client_address: str | None = Field(default=None, max_length=ADDRESS_LEN)
    user_agent: str | None = Field(default=None, max_length=UA_LEN)
    #: e.g. ``rollout.pause``
    action: str = Field(max_length=ACTION_LEN)
    #: e.g. ``rollout 7``, ``model det 1.4.0``
    target: str = Field(max_length=TARGET_LEN)
    #: the answer's HTTP status code
    status: int
    #: a few of the request's fields (never a secret: see ``naming.DETAIL_FIELDS``)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
