"""The alert dispatcher: on one replica at a time, fan events out and deliver them.

A daemon thread wakes every ``interval_s``, takes or renews the ``alerts`` lease
(``controlplane.leases``) and, while it holds it:

1. runs the **offline check** (``controlplane.alerts.offline``), which queues events;
2. **fans out** the events not yet dispatched: one ``alertdelivery`` per webhook that
   subscribed to the event's type and existed when it happened (or the one webhook a
   ping or an offline alert is for). Each event is claimed by a compare-and-set of its
   ``dispatched`` flag, and a webhook gets an event at most once (a unique key);
3. **delivers** the pending deliveries that are due, oldest first. Each attempt is claimed
   first by a compare-and-set on its ``attempts`` count, which also moves
   ``next_attempt_at`` past the attempt's timeout: even two dispatchers at once (a lease
   hand-over) never send one attempt twice, and an attempt cut short by a crash is made
   again once its claim lapses. A 2xx answer delivers it; anything else (another status,
   a redirect, which is never followed, a timeout, a refused connection) schedules the
   next attempt after a capped exponential backoff, or fails it after the last attempt;
4. once an hour, drops finished deliveries and events older than ``keep_s``.

Everything lives in the database, so pending deliveries survive a restart and are sent
by whichever replica holds the lease. A failure is logged in one line (never a secret)
and tried again at the next wake-up; a clean stop releases the lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from controlplane.alerts import offline
from controlplane.alerts.events import envelope
from controlplane.alerts.sender import Outcome, Request, RetryPolicy, send
from controlplane.alerts.tables import AlertDelivery, AlertEvent, AlertWebhook, DeliveryState
from controlplane.leased_loop import LeasedLoop
from controlplane.models import utcnow
from controlplane.schemas import as_utc

logger = logging.getLogger(__name__)

LEASE = "alerts"
INTERVAL_S = 5.0
KEEP_S = 7 * 86400
#: Events fanned out, and deliveries attempted, per wake-up at most.
BATCH = 200
_PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Tick:
    """What one wake-up did."""

    fanned_out: int
    offline: int
    attempted: int


class Dispatcher(LeasedLoop):
    name = LEASE

    def __init__(
        self,
        engine: Engine,
        *,
        replica: str,
        retry: RetryPolicy | None = None,
        interval_s: float = INTERVAL_S,
        keep_s: int = KEEP_S,
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        ttl = timedelta(seconds=max(3 * interval_s, 3 * self.retry.timeout_s, 5.0))
        super().__init__(engine, replica=replica, interval_s=interval_s, ttl=ttl, clock=clock)
        self._keep = timedelta(seconds=keep_s)
        self._transport = transport
        self._pruned: datetime | None = None

    def run_once(self, now: datetime | None = None) -> Tick | None:
        """One wake-up if this replica holds the lease; what it did, or None."""
        now = now or self._clock()
        try:
            if not self.hold(now):
                return None
            with Session(self._engine) as session:
                down = offline.check(session, now=now)
                fanned = fan_out(session, now=now)
            attempted = self._deliver(now)
            if self._pruned is None or now - self._pruned >= _PRUNE_EVERY:
                prune(self._engine, before=now - self._keep)
                self._pruned = now
            return Tick(fanned, down, attempted)
        except Exception as exc:  # the database is away: try again next time
            text = str(exc).strip().splitlines()
            logger.error("alerts failed: %s: %s", type(exc).__name__, text[0] if text else "")
            return None

    def _deliver(self, now: datetime) -> int:
        with Session(self._engine) as session:
            due = session.exec(
                select(AlertDelivery.id)
                .where(
                    AlertDelivery.state == DeliveryState.PENDING.value,
                    col(AlertDelivery.next_attempt_at) <= now,
                )
                .order_by(col(AlertDelivery.next_attempt_at), col(AlertDelivery.id))
                .limit(BATCH)
            ).all()
        if not due:
            return 0
        attempted = 0
        timeout = httpx.Timeout(self.retry.timeout_s)
        started = time.monotonic()
        with httpx.Client(
            timeout=timeout, follow_redirects=False, transport=self._transport
        ) as client:
            for delivery_id in due:
                if self._stop.is_set() or delivery_id is None:
                    break
                elapsed = time.monotonic() - started
                if elapsed > self._ttl.total_seconds() / 2:
                    break  # the rest at the next wake-up, once the lease is renewed
                # the wake-up's time, moved on by what its sends took: each attempt is
                # claimed, signed and recorded at its own time
                at = now + timedelta(seconds=elapsed)
                claimed = self._claim(delivery_id, at)
                if claimed is None:
                    continue
                request, attempts = claimed
                outcome = send(client, request, now_unix=int(at.timestamp()))
                self._record(delivery_id, attempts, outcome, at)  # backoff from its start
                attempted += 1
        return attempted

    def _claim(self, delivery_id: int, now: datetime) -> tuple[Request, int] | None:
        """Take the next attempt of a due delivery (committed): its request and number."""
        with Session(self._engine) as session:
            delivery = session.get(AlertDelivery, delivery_id)
            if delivery is None or delivery.state != DeliveryState.PENDING.value:
                return None
            webhook = session.get(AlertWebhook, delivery.webhook_id)
            event = session.get(AlertEvent, delivery.event_id)
            if webhook is None or event is None:
                return None
            attempts = delivery.attempts + 1
            hold = timedelta(seconds=self.retry.timeout_s + self.interval_s + 30)
            claimed = session.exec(
                update(AlertDelivery)
                .where(
                    col(AlertDelivery.id) == delivery_id,
                    col(AlertDelivery.state) == DeliveryState.PENDING.value,
                    col(AlertDelivery.attempts) == delivery.attempts,
                )
                .values(attempts=attempts, last_attempt_at=now, next_attempt_at=now + hold)
            )
            if claimed.rowcount != 1:  # another dispatcher took it
                session.rollback()
                return None
            session.commit()
            body = envelope(
                event_id=event.id, type_=event.type, at=as_utc(event.at), data=event.data
            )
            request = Request(
                url=webhook.url,
                secret=webhook.secret,
                body=body,
                event_id=event.id,
                event_type=event.type,
                delivery_id=delivery_id,
            )
            return request, attempts

    def _record(self, delivery_id: int, attempts: int, outcome: Outcome, now: datetime) -> None:
        values: dict[str, object] = {"last_status": outcome.status, "last_error": outcome.error}
        if outcome.delivered:
            values |= {"state": DeliveryState.DELIVERED.value, "delivered_at": now}
            values["next_attempt_at"] = None
        elif attempts >= self.retry.max_attempts:
            values |= {"state": DeliveryState.FAILED.value, "next_attempt_at": None}
            logger.warning(
                "alert delivery %s failed after %s attempts: %s",
                delivery_id,
                attempts,
                outcome.error,
            )
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self.retry.delay_s(attempts))
            logger.info(
                "alert delivery %s attempt %s: %s (retried)", delivery_id, attempts, outcome.error
            )
        with Session(self._engine) as session:
            session.exec(
                update(AlertDelivery)
                .where(
                    col(AlertDelivery.id) == delivery_id,
                    col(AlertDelivery.attempts) == attempts,  # still our attempt
                )
                .values(**values)
            )
            session.commit()


def fan_out(session: Session, *, now: datetime) -> int:
    """One delivery per subscribed webhook for each event not dispatched yet (committed)."""
    events = session.exec(
        select(AlertEvent)
        .where(col(AlertEvent.dispatched).is_(False))
        .order_by(col(AlertEvent.at))
        .limit(BATCH)
    ).all()
    if not events:
        return 0
    hooks = session.exec(select(AlertWebhook).order_by(col(AlertWebhook.id))).all()
    made = 0
    for event in events:
        claimed = session.exec(
            update(AlertEvent)
            .where(col(AlertEvent.id) == event.id, col(AlertEvent.dispatched).is_(False))
            .values(dispatched=True)
        )
        if claimed.rowcount != 1:
            continue
        for hook in hooks:
            if not _wants(hook, event):
                continue
            assert hook.id is not None
            delivery = AlertDelivery(
                webhook_id=hook.id,
                event_id=event.id,
                event_type=event.type,
                next_attempt_at=now,
                created_at=now,
            )
            session.add(delivery)
            made += 1
    session.commit()
    return made


def _wants(hook: AlertWebhook, event: AlertEvent) -> bool:
    if event.webhook_id is not None:
        return hook.id == event.webhook_id
    return event.type in hook.events and as_utc(hook.created_at) <= as_utc(event.at)


def prune(engine: Engine, *, before: datetime) -> None:
    """Drop finished deliveries, and dispatched events without deliveries, older than
    ``before`` (committed)."""
    with Session(engine) as session:
        session.exec(
            delete(AlertDelivery).where(
                col(AlertDelivery.state) != DeliveryState.PENDING.value,
                col(AlertDelivery.created_at) < before,
            )
        )
        pending = select(AlertDelivery.event_id)
        session.exec(
            delete(AlertEvent).where(
                col(AlertEvent.dispatched).is_(True),
                col(AlertEvent.at) < before,
                col(AlertEvent.id).not_in(pending),
            )
        )
        session.commit()
