"""``/dashboard/alerts``: the alert webhooks and their newest deliveries (operator or
admin, as ``GET /api/v1/alerts``).

A webhook's URL is shown without what may be a credential: its user and password, and
its query (chat services put their keys there); its secret is never stored in a way this
page could show.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from controlplane.alerts import crud
from controlplane.alerts.schemas import DeliveryCounts, shown_url
from controlplane.alerts.tables import AlertDelivery, AlertWebhook
from controlplane.dashboard.html import Markup, ago, badge, join, section, span, table, when_text

#: Deliveries shown, newest first.
DELIVERIES = 50


def _counts(counts: DeliveryCounts) -> str:
    return f"{counts.delivered} delivered, {counts.pending} pending, {counts.failed} failed"


def _webhooks(webhooks: list[AlertWebhook], counts: dict[int, DeliveryCounts]) -> Markup:
    rows = [
        [
            w.id,
            shown_url(w.url),
            ", ".join(w.events),
            f"{w.offline_after_s} s",
            w.description,
            _counts(counts.get(w.id or 0, DeliveryCounts())),
        ]
        for w in webhooks
    ]
    headers = ["id", "url", "events", "offline after", "description", "deliveries"]
    empty = "No webhook. Add one with edgectl alerts add URL (docs/alerts.md)."
    return table(headers, rows, empty=empty)


def _deliveries(deliveries: list[AlertDelivery], max_attempts: int, now: datetime) -> Markup:
    rows = [
        [
            d.id,
            d.webhook_id,
            d.event_type,
            badge(d.state),
            f"{d.attempts}/{max_attempts}",
            d.last_status,
            d.last_error,
            ago(d.last_attempt_at, now),
            _next(d.next_attempt_at, now) if d.state == "pending" else None,
            ago(d.created_at, now),
        ]
        for d in deliveries
    ]
    headers = ["id", "webhook", "event", "state", "attempts", "last status", "last error"]
    headers += ["last attempt", "next attempt", "created"]
    return table(headers, rows, empty="Nothing sent yet.")


def _next(at: datetime | None, now: datetime) -> Markup | None:
    """``in 1m 50s`` (its UTC time on hover), ``due`` once past."""
    if at is None:
        return None
    left = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - now
    return when_text(at, f"in {span(left.total_seconds())}" if left.total_seconds() > 0 else "due")


def render(session: Session, *, max_attempts: int, now: datetime) -> Markup:
    webhooks = list(crud.list_webhooks(session))
    counts = crud.delivery_counts(session, [w.id for w in webhooks if w.id is not None])
    deliveries = list(
        crud.list_deliveries(
            session, webhook_id=None, state=None, event_type=None, limit=DELIVERIES
        )
    )
    return join(
        [
            section("Webhooks", _webhooks(webhooks, counts)),
            section("Deliveries", _deliveries(deliveries, max_attempts, now)),
        ]
    )
