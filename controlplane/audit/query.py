"""Reading the audit trail: filters and keyset paging, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from controlplane.audit.table import AuditEntry

MAX_LIMIT = 500


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    #: the ``before`` of the next (older) page, None when this is the last
    next_before: int | None


def list_entries(
    session: Session,
    *,
    since: datetime | None = None,
    token: str | None = None,
    action: str | None = None,
    target: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> AuditPage:
    """Entries newest first (by id), older than ``before`` if given. ``action`` ending in
    ``.`` matches every action it starts (``rollout.``); otherwise filters are exact."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(AuditEntry)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if token is not None:
        query = query.where(col(AuditEntry.token_name) == token)
    if action is not None:
        if action.endswith("."):
            query = query.where(col(AuditEntry.action).startswith(action, autoescape=True))
        else:
            query = query.where(col(AuditEntry.action) == action)
    if target is not None:
        query = query.where(col(AuditEntry.target) == target)
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    rows = list(session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(entries=rows, next_before=rows[-1].id if more and rows else None)


def prune(engine: Engine, *, now: datetime, keep_s: int) -> int:
    """Drop entries recorded more than ``keep_s`` ago; how many."""
    with Session(engine) as session:
        gone = session.exec(
            delete(AuditEntry).where(col(AuditEntry.at) < now - timedelta(seconds=keep_s))
        )
        session.commit()
        return int(gone.rowcount or 0)
