"""The periodic offline check: ``device.offline`` once per outage per webhook.

A device is offline when the broker says so (``online`` false: its LWT or a clean
disconnect) and it was last seen more than the webhook's ``offline_after_s`` ago. An
outage is the device's ``last_seen_at``: ``alertoutage`` keeps, per webhook, the one last
alerted, so a device that stays away is alerted once, and again only after it came back
(which moves ``last_seen_at``) and went away again. Outages that passed the threshold
before the webhook existed are not alerted (no flood of old outages when it is added).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from controlplane.alerts.events import EventType, device_data, new_event_id
from controlplane.alerts.tables import AlertEvent, AlertOutage, AlertWebhook
from controlplane.models import Device
from controlplane.schemas import as_utc

#: Devices alerted per webhook per check at most (the rest at the next check).
BATCH = 500


def check(session: Session, *, now: datetime) -> int:
    """Queue ``device.offline`` events for new outages (committed); how many."""
    hooks = [
        h
        for h in session.exec(select(AlertWebhook).order_by(col(AlertWebhook.id))).all()
        if EventType.DEVICE_OFFLINE.value in h.events
    ]
    queued = 0
    for hook in hooks:
        assert hook.id is not None
        queued += _check_one(session, hook, hook.id, now)
    session.commit()
    return queued


def _check_one(session: Session, hook: AlertWebhook, hook_id: int, now: datetime) -> int:
    after = timedelta(seconds=hook.offline_after_s)
    seen = col(Device.last_seen_at)
    query = (
        select(Device, AlertOutage)
        .outerjoin(
            AlertOutage,
            and_(col(AlertOutage.device_id) == Device.id, col(AlertOutage.webhook_id) == hook_id),
        )
        .where(
            col(Device.online).is_(False),
            seen.is_not(None),
            seen < now - after,
            seen >= as_utc(hook.created_at) - after,
            or_(col(AlertOutage.since).is_(None), col(AlertOutage.since) != seen),
        )
        .order_by(seen)
        .limit(BATCH)
    )
    rows = session.exec(query).all()
    for device, outage in rows:
        assert device.last_seen_at is not None
        if outage is None:
            outage = AlertOutage(webhook_id=hook_id, device_id=device.id, since=device.last_seen_at)
        outage.since, outage.alerted_at = device.last_seen_at, now
        session.add(outage)
        data = device_data(
            device_id=device.id,
            fleet=device.fleet,
            model=device.active_model,
            version=device.active_version,
            reason=f"offline for more than {hook.offline_after_s}s",
            last_seen_at=device.last_seen_at,
            offline_for_s=int((now - as_utc(device.last_seen_at)).total_seconds()),
        )
        event = AlertEvent(
            id=new_event_id(),
            type=EventType.DEVICE_OFFLINE.value,
            at=now,
            data=data,
            webhook_id=hook_id,
        )
        session.add(event)
    return len(rows)
