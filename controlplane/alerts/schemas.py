"""The ``/alerts`` API's request and answer shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from controlplane.alerts.events import SUBSCRIBABLE
from controlplane.schemas import UtcDatetime

#: 10 seconds to 30 days.
MIN_OFFLINE_S, MAX_OFFLINE_S = 10, 30 * 86400


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("only http:// and https:// URLs with a host are accepted")
    if not value.isascii() or any(c.isspace() for c in value):
        raise ValueError("write the URL in ASCII without spaces (%-encode the rest)")
    return value


def _events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(SUBSCRIBABLE))
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(SUBSCRIBABLE)}")
    if not value:
        raise ValueError("name at least one event type (or leave events out: all of them)")
    return sorted(set(value))


def _secret(value: str | None) -> str | None:
    if value is not None and (not value.isascii() or not value.isprintable() or " " in value):
        raise ValueError("the secret must be printable ASCII without spaces")
    return value


WebhookUrl = Annotated[str, Field(min_length=8, max_length=2048), AfterValidator(_url)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    #: event types (default: all of them)
    events: Annotated[list[str] | None, AfterValidator(_events)] = None
    #: how long a device is offline before a device.offline alert (seconds)
    offline_after_s: int = Field(default=600, ge=MIN_OFFLINE_S, le=MAX_OFFLINE_S)
    #: the HMAC secret to sign with (default: a new random one, answered once)
    secret: Annotated[str | None, Field(min_length=16, max_length=256), AfterValidator(_secret)] = (
        None
    )
    description: str | None = Field(default=None, max_length=256)


class DeliveryCounts(BaseModel):
    pending: int = 0
    delivered: int = 0
    failed: int = 0


class WebhookPublic(BaseModel):
    """A webhook, without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    offline_after_s: int
    description: str | None
    created_at: UtcDatetime
    deliveries: DeliveryCounts = DeliveryCounts()


class WebhookCreated(WebhookPublic):
    """A new webhook and its secret: the only answer that holds the secret."""

    secret: str


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    webhook_id: int
    event_id: str
    event_type: str
    #: pending, delivered or failed
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: UtcDatetime | None
    last_attempt_at: UtcDatetime | None
    #: the receiver's last HTTP status (None: no answer)
    last_status: int | None
    last_error: str | None
    delivered_at: UtcDatetime | None
    created_at: datetime
