"""``/audit``: the audit trail, newest first (operator or admin: ``auth.policy``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from controlplane.audit import list_entries
from controlplane.audit.query import MAX_LIMIT
from controlplane.deps import SessionDep
from controlplane.schemas import AuditEntryPublic, IsoDatetime

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def get_audit(
    request: Request,
    response: Response,
    session: SessionDep,
    since: Annotated[
        IsoDatetime | None, Query(description="ISO 8601, e.g. 2026-12-05T10:00Z")
    ] = None,
    token: Annotated[str | None, Query(max_length=128, description="a token's name")] = None,
    action: Annotated[
        str | None,
        Query(max_length=64, description="e.g. rollout.pause; ending in '.': a prefix"),
    ] = None,
    target: Annotated[str | None, Query(max_length=300, description="e.g. rollout 7")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the X-Next-Before of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[AuditEntryPublic]:
    """Recorded writes, newest first, a page at a time: when there are more, the
    ``Link`` header (``rel="next"``) names the next (older) page and ``X-Next-Before``
    its cursor."""
    page = list_entries(
        session,
        since=since,
        token=token,
        action=action,
        target=target,
        before=before,
        limit=limit,
    )
    if page.next_before is not None:
        url = request.url.include_query_params(before=page.next_before, limit=limit)
        response.headers["Link"] = f'<{url}>; rel="next"'
        response.headers["X-Next-Before"] = str(page.next_before)
    return [AuditEntryPublic.model_validate(entry) for entry in page.entries]
