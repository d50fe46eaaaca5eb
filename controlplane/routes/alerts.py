"""``/alerts`` (operator, reads included): webhooks, their deliveries, and test pings.

Events are queued in the database and delivered by the dispatcher
(``controlplane.alerts.dispatch``) of the replica holding the ``alerts`` lease.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from controlplane.alerts import crud
from controlplane.alerts.events import SUBSCRIBABLE, EventType
from controlplane.alerts.schemas import (
    DeliveryCounts,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    usable_url,
)
from controlplane.alerts.tables import AlertDelivery, AlertWebhook, DeliveryState
from controlplane.deps import RowId, SessionDep, SettingsDep
from controlplane.errors import InvalidRequest

router = APIRouter(prefix="/alerts", tags=["alerts"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown webhook"}}


def _public(webhook: AlertWebhook, counts: dict[int, DeliveryCounts]) -> WebhookPublic:
    public = WebhookPublic.model_validate(webhook)
    assert webhook.id is not None
    public.deliveries = counts.get(webhook.id, DeliveryCounts())
    return public


@router.post(
    "/webhooks", status_code=201, responses={400: {"description": "a URL without a usable host"}}
)
def create_webhook(body: WebhookCreate, session: SessionDep) -> WebhookCreated:
    """A new webhook. The answer is the only one that holds its secret."""
    if (wrong := usable_url(body.url)) is not None:
        raise InvalidRequest(f"url: {wrong}")
    webhook = crud.create_webhook(
        session,
        url=body.url,
        events=body.events,
        offline_after_s=body.offline_after_s,
        secret=body.secret,
        description=body.description,
    )
    return WebhookCreated.model_validate({**webhook.model_dump(), "secret": webhook.secret})


@router.get("/webhooks")
def list_webhooks(session: SessionDep) -> list[WebhookPublic]:
    """Every webhook (never its secret), with its deliveries counted by state."""
    webhooks = crud.list_webhooks(session)
    counts = crud.delivery_counts(session, [w.id for w in webhooks if w.id is not None])
    return [_public(w, counts) for w in webhooks]


@router.get("/webhooks/{webhook_id}", responses=_NOT_FOUND)
def get_webhook(webhook_id: RowId, session: SessionDep) -> WebhookPublic:
    webhook = crud.get_webhook(session, webhook_id=webhook_id)
    return _public(webhook, crud.delivery_counts(session, [webhook_id]))


@router.delete("/webhooks/{webhook_id}", responses=_NOT_FOUND)
def remove_webhook(webhook_id: RowId, session: SessionDep) -> WebhookPublic:
    """Remove a webhook and its deliveries: nothing more is sent to it."""
    webhook = crud.get_webhook(session, webhook_id=webhook_id)
    public = _public(webhook, crud.delivery_counts(session, [webhook_id]))
    crud.remove_webhook(session, webhook_id=webhook_id)
    return public


@router.post("/webhooks/{webhook_id}/test", status_code=202, responses=_NOT_FOUND)
def test_webhook(webhook_id: RowId, session: SessionDep, settings: SettingsDep) -> DeliveryPublic:
    """Queue a ``ping`` to the webhook; the answer is its delivery (pending)."""
    delivery = crud.ping(session, webhook_id=webhook_id)
    return _delivery(delivery, settings.alert_max_attempts)


def _delivery(delivery: AlertDelivery, max_attempts: int) -> DeliveryPublic:
    return DeliveryPublic.model_validate({**delivery.model_dump(), "max_attempts": max_attempts})


EventTypeQuery = Annotated[
    str | None,
    Query(
        description="only this event type",
        pattern="^("
        + "|".join(t.replace(".", r"\.") for t in SUBSCRIBABLE)
        + "|"
        + EventType.PING.value
        + ")$",
    ),
]


@router.get("/deliveries", responses=_NOT_FOUND)
def list_deliveries(
    session: SessionDep,
    settings: SettingsDep,
    webhook_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    state: DeliveryState | None = None,
    event_type: EventTypeQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryPublic]:
    """Deliveries, newest first: their state, attempts, last answer and next attempt."""
    found = crud.list_deliveries(
        session, webhook_id=webhook_id, state=state, event_type=event_type, limit=limit
    )
    return [_delivery(d, settings.alert_max_attempts) for d in found]


@router.get("/deliveries/{delivery_id}", responses={404: {"description": "unknown delivery"}})
def get_delivery(delivery_id: RowId, session: SessionDep, settings: SettingsDep) -> DeliveryPublic:
    return _delivery(
        crud.get_delivery(session, delivery_id=delivery_id), settings.alert_max_attempts
    )
