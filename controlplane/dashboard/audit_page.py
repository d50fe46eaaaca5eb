"""``/dashboard/audit``: the audit trail as a page (filters, newest first, older pages)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from pydantic import BaseModel, Field
from sqlmodel import Session

from controlplane.audit import AuditEntry, list_entries
from controlplane.dashboard.html import Markup, ago, esc, link, table

PER_PAGE = 100
HREF = "/dashboard/audit"


class Filters(BaseModel):
    """The page's query: as ``GET /api/v1/audit`` takes it (blank fields ignored)."""

    token: str | None = Field(default=None, max_length=128)
    action: str | None = Field(default=None, max_length=64)
    target: str | None = Field(default=None, max_length=300)
    before: int | None = Field(default=None, ge=1, le=2**63 - 1)

    def given(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.strip() or None if isinstance(value, str) else None


def _stamp(at: datetime) -> str:
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _who(entry: AuditEntry) -> str:
    return f"{entry.token_name} ({entry.role})" if entry.token_name else "(no token)"


def _row(entry: AuditEntry, now: datetime) -> list[object]:
    return [
        Markup(f"{esc(_stamp(entry.at))} ({ago(entry.at, now)})"),
        _who(entry),
        entry.source,
        entry.client_address,
        entry.user_agent,
        entry.action,
        entry.target,
        entry.status,
        ", ".join(f"{k}={v}" for k, v in sorted(entry.detail.items())) or None,
    ]


def _form(filters: Filters) -> Markup:
    fields = "".join(
        f'<label>{name} <input name="{name}" value="{esc(filters.given(name) or "")}" '
        f'placeholder="{hint}"></label>'
        for name, hint in (
            ("token", "token name"),
            ("action", "e.g. rollout. or rollout.pause"),
            ("target", "e.g. rollout 7"),
        )
    )
    return Markup(
        f'<form class="action" method="get" action="{HREF}">{fields}'
        '<button type="submit">Filter</button></form>'
    )


def render(session: Session, filters: Filters, *, now: datetime) -> Markup:
    """Writes recorded, newest first, :data:`PER_PAGE` a page."""
    page = list_entries(
        session,
        token=filters.given("token"),
        action=filters.given("action"),
        target=filters.given("target"),
        before=filters.before,
        limit=PER_PAGE,
    )
    rows = [_row(entry, now) for entry in page.entries]
    headers = ["when", "who", "source", "address", "user agent", "action", "target", "status"]
    body = Markup(
        _form(filters)
        + table([*headers, "detail"], rows, empty="Nothing recorded (with these filters).")
    )
    if page.next_before is not None:
        query = {k: v for k in ("token", "action", "target") if (v := filters.given(k))}
        href = f"{HREF}?{urlencode({**query, 'before': page.next_before})}"
        body = Markup(body + Markup(f"<p>{link(href, 'older entries')}</p>"))
    return body
