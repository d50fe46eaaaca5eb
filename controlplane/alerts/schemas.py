"""The ``/alerts`` API's request and answer shapes."""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from controlplane.alerts.events import SUBSCRIBABLE
from controlplane.schemas import UtcDatetime

#: 10 seconds to 30 days.
MIN_OFFLINE_S, MAX_OFFLINE_S = 10, 30 * 86400


#: What the description says of a webhook URL; ``usable_url`` checks the rest (a host,
#: a port in range) and the route answers 400 for those.
URL_PATTERN = r"^https?://[!-~]+$"


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("only http:// and https:// URLs are accepted")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("write the URL in ASCII without spaces (%-encode the rest)")
    return value


def usable_url(value: str) -> str | None:
    """What is wrong with a URL ``WebhookUrl`` accepted, if anything: no host, a bad port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - ValueError for a port that is not a number or too large
    except ValueError as exc:
        return f"not a usable URL: {exc}"
    if not parts.hostname:
        return "not a usable URL: it names no host"
    try:
        httpx.URL(value)  # what the sender will parse: it must not refuse it then
    except httpx.InvalidURL as exc:
        return f"not a usable URL: {exc}"
    return None


def shown_url(url: str) -> str:
    """``https://hooks.example.com/edgefleet?…``: a URL without what may be a credential
    (its user, password and query); a relative one (a redirect's) is its path."""
    parts = urlsplit(url)
    if not parts.scheme:
        return parts.path[:100] or "?"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" + ("?…" if parts.query else "")


WebhookUrl = Annotated[
    str,
    Field(min_length=8, max_length=2048, json_schema_extra={"pattern": URL_PATTERN}),
    AfterValidator(_url),
]
#: The event types a webhook may subscribe to.
Subscribable = Literal[
    "rollout.paused",
    "rollout.aborted",
    "rollout.completed",
    "device.failed",
    "device.regressed",
    "device.offline",
]
assert get_args(Subscribable) == SUBSCRIBABLE, "keep Subscribable as events.SUBSCRIBABLE"


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    #: event types (default: all of them)
    events: list[Subscribable] | None = Field(default=None, min_length=1)
    #: how long a device is offline before a device.offline alert (seconds)
    offline_after_s: int = Field(default=600, ge=MIN_OFFLINE_S, le=MAX_OFFLINE_S)
    #: the HMAC secret to sign with (default: a new random one, answered once)
    secret: str | None = Field(default=None, min_length=16, max_length=256, pattern=r"^[!-~]+$")
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
    created_at: UtcDatetime
