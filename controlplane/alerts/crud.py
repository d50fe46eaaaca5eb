"""Webhooks and their deliveries: keyword-only writes and reads for the ``/alerts`` routes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from controlplane.alerts.events import SUBSCRIBABLE, EventType, new_event_id
from controlplane.alerts.schemas import DeliveryCounts
from controlplane.alerts.signing import new_secret
from controlplane.alerts.tables import (
    AlertDelivery,
    AlertEvent,
    AlertOutage,
    AlertWebhook,
    DeliveryState,
)
from controlplane.errors import NotFound
from controlplane.models import utcnow


def create_webhook(
    session: Session,
    *,
    url: str,
    events: Sequence[str] | None,
    offline_after_s: int,
    secret: str | None,
    description: str | None,
) -> AlertWebhook:
    """A new webhook (committed); its secret is ``secret``, else a new random one."""
    webhook = AlertWebhook(
        url=url,
        events=sorted(set(events)) if events else list(SUBSCRIBABLE),
        offline_after_s=offline_after_s,
        secret=secret or new_secret(),
        description=description,
        created_at=utcnow(),
    )
    session.add(webhook)
    session.commit()
    session.refresh(webhook)
    return webhook


def list_webhooks(session: Session) -> Sequence[AlertWebhook]:
    return session.exec(select(AlertWebhook).order_by(col(AlertWebhook.id))).all()


def get_webhook(session: Session, *, webhook_id: int) -> AlertWebhook:
    webhook = session.get(AlertWebhook, webhook_id)
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return webhook


def remove_webhook(session: Session, *, webhook_id: int) -> AlertWebhook:
    """Delete a webhook with its deliveries and outages (committed); what it was."""
    webhook = get_webhook(session, webhook_id=webhook_id)
    session.exec(delete(AlertDelivery).where(col(AlertDelivery.webhook_id) == webhook_id))
    session.exec(delete(AlertOutage).where(col(AlertOutage.webhook_id) == webhook_id))
    session.delete(webhook)
    session.commit()
    return webhook


def ping(session: Session, *, webhook_id: int, now: datetime | None = None) -> AlertDelivery:
    """Queue a ``ping`` to one webhook (committed): its delivery, pending."""
    now = now or utcnow()
    webhook = get_webhook(session, webhook_id=webhook_id)
    event = AlertEvent(
        id=new_event_id(),
        type=EventType.PING.value,
        at=now,
        data={"webhook": {"id": webhook_id, "url": webhook.url}, "message": "ping"},
        webhook_id=webhook_id,
        dispatched=True,  # its delivery is made here, at once
    )
    delivery = AlertDelivery(
        webhook_id=webhook_id,
        event_id=event.id,
        event_type=event.type,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(event)
    session.flush()
    session.add(delivery)
    session.commit()
    session.refresh(delivery)
    return delivery


def list_deliveries(
    session: Session,
    *,
    webhook_id: int | None,
    state: DeliveryState | None,
    event_type: str | None,
    limit: int,
) -> Sequence[AlertDelivery]:
    """Deliveries, newest first."""
    if webhook_id is not None:
        get_webhook(session, webhook_id=webhook_id)
    query = select(AlertDelivery)
    if webhook_id is not None:
        query = query.where(AlertDelivery.webhook_id == webhook_id)
    if state is not None:
        query = query.where(AlertDelivery.state == state.value)
    if event_type is not None:
        query = query.where(AlertDelivery.event_type == event_type)
    query = query.order_by(col(AlertDelivery.id).desc()).limit(limit)
    return session.exec(query).all()


def delivery_counts(session: Session, webhook_ids: list[int]) -> dict[int, DeliveryCounts]:
    """Each webhook's deliveries counted by state."""
    rows = session.exec(
        select(AlertDelivery.webhook_id, AlertDelivery.state, func.count())
        .where(col(AlertDelivery.webhook_id).in_(webhook_ids))
        .group_by(col(AlertDelivery.webhook_id), col(AlertDelivery.state))
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for webhook_id, state, count in rows:
        counts.setdefault(webhook_id, {})[state] = count
    return {k: DeliveryCounts.model_validate(v) for k, v in counts.items()}


def get_delivery(session: Session, *, delivery_id: int) -> AlertDelivery:
    delivery = session.get(AlertDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id}")
    return delivery
