"""The alert tables: webhooks, the event outbox, deliveries and open outages.

- ``alertwebhook``: where to POST, which event types, its HMAC secret (kept to sign; never
  answered after creation) and its offline threshold.
- ``alertevent``: the outbox. One row per event, written in the transaction that caused it
  (``controlplane.alerts.emit``) or by the dispatcher's offline check; ``webhook_id`` set:
  for that webhook only (a ping, an offline alert). ``dispatched`` once fanned out.
- ``alertdelivery``: one event to one webhook: its state (pending, delivered, failed),
  attempts, the last answer and when the next attempt is due.
- ``alertoutage``: per webhook and device, the ``last_seen_at`` of the outage last alerted,
  so each outage is alerted once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from controlplane.models import utcnow


def _ts(*, nullable: bool = False, **kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kwargs)


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class AlertWebhook(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2048)
    #: the event types it receives (``controlplane.alerts.events.EventType`` values)
    events: list[str] = Field(default_factory=list, sa_type=JSON)
    #: a device.offline alert once a device has been offline this long
    offline_after_s: int = 600
    #: the HMAC-SHA256 key of its signatures; never answered after creation, never logged
    secret: str = Field(max_length=256)
    description: str | None = Field(default=None, max_length=256)
    created_at: datetime = _ts(default_factory=utcnow)


class AlertEvent(SQLModel, table=True):
    __table_args__ = (Index("ix_alertevent_dispatched_at", "dispatched", "at"),)

    #: ``evt_`` and 32 hex digits: the receiver's idempotency key
    id: str = Field(primary_key=True, max_length=40)
    type: str = Field(max_length=32)
    at: datetime = _ts(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    #: for this webhook only (a ping, an offline alert); None: every subscribed webhook
    webhook_id: int | None = Field(default=None)
    dispatched: bool = False


class AlertDelivery(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_alertdelivery_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="alertwebhook.id", index=True)
    event_id: str = Field(foreign_key="alertevent.id", index=True, max_length=40)
    event_type: str = Field(max_length=32)
    state: str = Field(default=DeliveryState.PENDING.value, max_length=16)
    attempts: int = 0
    #: when the next attempt is due (None once delivered or failed); an attempt in
    #: progress moves it past the attempt's timeout (its claim)
    next_attempt_at: datetime | None = _ts(nullable=True, default=None)
    last_attempt_at: datetime | None = _ts(nullable=True, default=None)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=512)
    delivered_at: datetime | None = _ts(nullable=True, default=None)
    created_at: datetime = _ts(default_factory=utcnow)


class AlertOutage(SQLModel, table=True):
    webhook_id: int = Field(primary_key=True, foreign_key="alertwebhook.id")
    device_id: str = Field(primary_key=True, max_length=128)
    #: the device's ``last_seen_at`` when this outage was alerted
    since: datetime = _ts()
    alerted_at: datetime = _ts(default_factory=utcnow)
