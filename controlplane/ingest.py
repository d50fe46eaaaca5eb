"""Apply device reports (state, events, heartbeats, availability) to the database.

Independent of paho: the MQTT bridge hands every received message to
:meth:`Ingester.handle`, and unit tests call it directly. ``handle`` never raises: a
malformed or forged message is logged in one line, counted and skipped.

Nothing depends on the broker's ACLs: a report is believed only if it is sealed by the
key the device its topic names enrolled with, and is neither replayed nor dated in the
future (``controlplane.identity.report_auth``). Anything else is dropped, counted
(``unauthenticated``, ``replayed``, ``future``) and logged in one line. A device that was
never enrolled is never registered. A payload naming another device is rejected.

Nothing in an authenticated report is believed beyond what a device may say about itself
(``controlplane.ingest_rules``): a payload over ``MAX_REPORT_BYTES`` is malformed, dropped
before JSON parsing (the protocol bounds every field); one dated too far ahead is
rejected; the fleet a state report names is ignored. Heartbeats are ordered by the
device's time but never later than when they arrived (``controlplane.crud.heartbeats``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controlplane import crud, history
from controlplane.commands import CommandSigner, publish_commands
from controlplane.crud.heartbeats import HeartbeatRow, HeartbeatRows
from controlplane.errors import ControlPlaneError
from controlplane.identity.report_auth import (
    MAX_CLOCK_SKEW,
    DeviceRow,
    ReportAuthenticator,
    ReportRefused,
)
from controlplane.ingest_batch import (
    UNKNOWN_KIND,
    BatchReads,
    Incoming,
    IngestStats,
    KindStats,
    Outcome,
    batch_reads,
    batchable,
    device_of,
    devices_of,
    heartbeats_only,
    kind_of,
    lock_devices,
)
from controlplane.ingest_rules import Dropped, FleetClaims, ahead_by, one_line, report_time
from controlplane.models import Device, utcnow
from controlplane.publisher import DesiredStatePublisher
from controlplane.report_acks import ACKED_KINDS, AckBook
from protocol import (
    MAX_REPORT_BYTES,
    Availability,
    DeploymentEvent,
    Heartbeat,
    ProtocolError,
    StateReport,
    TopicKind,
    decode_body,
    message_type_for,
    parse_device_topic,
)

logger = logging.getLogger(__name__)


class Ingester:
    """Turns report messages into database rows; sends new devices their signed command."""

    def __init__(
        self, engine: Engine, publisher: DesiredStatePublisher, signer: CommandSigner
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._signer = signer
        self.auth = ReportAuthenticator()
        #: what happened to the reports, by kind (``stats``: all kinds together)
        self.kinds = KindStats()
        self._fleet_claims = FleetClaims()
        #: the sequence numbers of spooled reports to acknowledge (``report_acks``)
        self.acks = AckBook()
        #: heartbeat history rows of the transaction in progress (``controlplane.history``)
        self._samples: list[dict[str, Any]] = []
        #: devices whose command to publish once the transaction committed: assigned a
        #: deployment (True), or whose runtimes changed (False: only a changed command)
        self._to_publish: dict[str, bool] = {}
        #: what the batch in progress read once for all its reports (None: one report)
        self._reads: BatchReads | None = None

    @property
    def stats(self) -> IngestStats:
        """The counters of every kind of report together."""
        return self.kinds.total()

    def oversized(self, topic: str, size: int) -> None:
        """Count and log a report of ``size`` bytes that was dropped unparsed."""
        stats = self.kinds.of(kind_of(topic))
        stats.received += 1
        stats.malformed += 1
        logger.warning(
            "dropped malformed message on %s: %s bytes, more than MAX_REPORT_BYTES (%s)",
            topic,
            size,
            MAX_REPORT_BYTES,
        )

    def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """Apply one message received on ``topic`` in a transaction of its own; never
        raises."""
        self._transaction([Incoming(topic, payload, retained)], batch=False)

    def handle_batch(self, items: Sequence[Incoming]) -> None:
        """Apply several messages; never raises. Reports go together, in one transaction
        (``controlplane.ingest_batch``); the few others (availability, retained copies)
        each in its own, after the batch whenever it holds an earlier report of the same
        device, so each device's reports keep their order."""
        batch: list[Incoming] = []
        devices: set[str] = set()
        for item in items:
            if batchable(item):
                batch.append(item)
                devices.add(parse_device_topic(item.topic)[0])
                continue
            if devices & {device_of(item)}:
                self._run(batch)
                batch, devices = [], set()
            self.handle(item.topic, item.payload, retained=item.retained)
        self._run(batch)

    def _run(self, batch: Sequence[Incoming]) -> None:
        """Apply a batch: the heartbeats of devices that sent only heartbeats in it on the
        fast path (``crud.heartbeats.HeartbeatRows``), in a transaction of their own; the
        others together on the ORM path."""
        only = heartbeats_only(batch)
        fast: list[Incoming] = []
        rest: list[Incoming] = []
        for item in batch:
            (fast if device_of(item) in only else rest).append(item)
        if len(fast) > 1:
            self._transaction(fast, batch=True, heartbeats=True)
        else:
            rest = fast + rest
        if len(rest) == 1:
            self.handle(rest[0].topic, rest[0].payload)
        elif rest:
            self._transaction(rest, batch=True)

    def _transaction(
        self, items: Sequence[Incoming], *, batch: bool, heartbeats: bool = False
    ) -> None:
        """Apply ``items`` in one transaction; count them and record their acks only
        once it committed. A batch the database refuses is applied one by one.
        ``heartbeats``: they are all heartbeats, applied on the fast path."""
        done = Outcome()
        self._samples = []
        self._to_publish = {}
        try:
            with Session(self._engine) as session:
                rows = HeartbeatRows.lock(session, devices_of(items)) if heartbeats else None
                locked: Mapping[str, DeviceRow] | None = None
                self._reads = None
                if rows is not None:
                    locked = rows.rows
                elif batch:
                    locked = lock_devices(session, items)
                    self._reads = batch_reads(session, items)
                commit = False
                # a batch writes its rows once, at the commit (one executemany per kind of
                # change); what a query below must see first is flushed where it is made
                with session.no_autoflush if batch else nullcontext():
                    for item in items:
                        commit = self._step(session, item, locked, done) or batch
                if commit:  # the replay window moved even if nothing else changed
                    if rows is not None:
                        rows.write(session)
                    history.record(session, self._samples)  # one INSERT for the batch
                    session.commit()
        except SQLAlchemyError as exc:
            if batch:
                logger.warning(
                    "a batch of %d reports failed in the database (%s); applying them one by one",
                    len(items),
                    one_line(exc),
                )
                for item in items:
                    self.handle(item.topic, item.payload, retained=item.retained)
                return
            device_id, kind = parse_device_topic(items[0].topic)
            self.kinds.of(kind.value).errors += 1
            logger.error(
                "database error ingesting %s from %s: %s", kind.value, device_id, one_line(exc)
            )
            return
        done.settle(self.kinds, self.acks)
        self._publish()

    def _publish(self) -> None:
        """Sign (where needed) and publish the commands the committed transaction called
        for; a failure is logged (the periodic re-sign and the next report retry it)."""
        pending, self._to_publish = self._to_publish, {}
        if not pending:
            return
        assigned = sorted(d for d, new in pending.items() if new)
        changed = sorted(d for d, new in pending.items() if not new)
        try:
            with Session(self._engine) as session:
                if assigned:
                    publish_commands(session, self._signer, self._publisher, device_ids=assigned)
                if changed:
                    publish_commands(
                        session,
                        self._signer,
                        self._publisher,
                        device_ids=changed,
                        changed_only=True,
                    )
        except SQLAlchemyError as exc:
            logger.error(
                "database error publishing the commands of %d device(s): %s",
                len(pending),
                one_line(exc),
            )

    def _step(
        self,
        session: Session,
        item: Incoming,
        locked: Mapping[str, DeviceRow] | None,
        done: Outcome,
    ) -> bool:
        """Apply one message in ``session``; True if it should be committed. What to
        count and acknowledge goes to ``done``."""
        topic, payload, retained = item.topic, item.payload, item.retained
        try:
            device_id, kind = parse_device_topic(topic)
        except ProtocolError as exc:
            done.kinds.of(UNKNOWN_KIND).rejected += 1
            logger.warning("ignored message on unexpected topic: %s", exc)
            return False
        if kind is TopicKind.DESIRED or not payload:
            return False  # our own desired states, or a retained message being cleared
        if len(payload) > MAX_REPORT_BYTES:
            self.oversized(topic, len(payload))
            return False
        stats = done.kinds.of(kind.value)
        stats.received += 1
        acked = kind in ACKED_KINDS and not retained
        seqs: list[int] = []  # the report's sequence number, once its seal verified
        try:
            applied = self._authenticated(
                session, topic, device_id, kind, payload, retained, seqs, locked, stats
            )
        except Dropped as dropped:
            if acked and dropped.seq is not None:
                if dropped.stored or self.acks.knows(device_id, dropped.seq):
                    done.ack(device_id, dropped.seq, stored=True, new=False)
                else:
                    done.ack(device_id, dropped.seq, stored=False)
            return False
        except ControlPlaneError as exc:
            stats.rejected += 1
            logger.warning("rejected %s from %s: %s", kind.value, device_id, exc)
            if acked and seqs:  # refused for good: sending again won't help
                done.ack(device_id, seqs[0], stored=False)
            return False
        except SQLAlchemyError:
            raise
        except Exception as exc:  # the bridge must survive anything one message does
            stats.errors += 1
            logger.error("failed to ingest %s from %s: %s", kind.value, device_id, one_line(exc))
            logger.debug("ingestion failure", exc_info=True)
            return False
        if acked and seqs:
            done.ack(device_id, seqs[0], stored=True)
        if applied:
            stats.applied += 1
        else:
            logger.debug("%s from unknown device or deployment %s ignored", kind.value, device_id)
        return True

    def _authenticated(
        self,
        session: Session,
        topic: str,
        device_id: str,
        kind: TopicKind,
        payload: bytes,
        retained: bool,
        seqs: list[int],
        locked: Mapping[str, DeviceRow] | None,
        stats: IngestStats,
    ) -> bool:
        """Authenticate, decode and apply one report (its sequence number appended to
        ``seqs`` once its seal verified); ``Dropped`` (counted, logged) if it is not
        believed or malformed."""
        try:
            opened = self.auth.open(session, device_id, kind, payload, now=utcnow(), locked=locked)
        except ReportRefused as exc:
            if retained and exc.reason == "replayed":
                raise Dropped from exc  # the broker's retained copy of what we applied
            setattr(stats, exc.reason, getattr(stats, exc.reason) + 1)
            logger.warning("dropped %s on %s (%s): %s", kind.value, topic, exc.reason, exc)
            raise Dropped(exc.seq, stored=exc.stored) from exc
        seq = opened.report.seq
        seqs.append(seq)
        try:
            message = decode_body(message_type_for(kind), opened.report.body)
        except ProtocolError as exc:
            stats.malformed += 1
            logger.warning("dropped malformed message on %s: %s", topic, exc)
            raise Dropped(seq) from exc
        if getattr(message, "device_id", None) != device_id:
            stats.rejected += 1
            logger.warning(
                "rejected %s on %s: payload names device %r",
                kind.value,
                topic,
                getattr(message, "device_id", None),
            )
            raise Dropped(seq)
        ahead = ahead_by(message, utcnow())
        if ahead is not None:  # sealed now, but claiming figures from the future
            stats.rejected += 1
            logger.warning(
                "rejected %s from %s: dated %s, %.0f s ahead of the control plane's clock "
                "(at most %.0f s allowed)",
                kind.value,
                device_id,
                report_time(message),
                ahead.total_seconds(),
                MAX_CLOCK_SKEW.total_seconds(),
            )
            raise Dropped(seq)
        if opened.stale and isinstance(message, StateReport | Availability):
            # a newer state (or availability) of this device was applied already: this
            # one crossed it on the way (replicas sharing reports); only its seq counts
            logger.debug("out-of-date %s from %s ignored", kind.value, device_id)
            return True
        return self._apply(session, opened.device, message, retained=retained)

    def _apply(
        self, session: Session, locked: DeviceRow, message: object, *, retained: bool
    ) -> bool:
        """Apply an authenticated report of ``locked`` (its row, locked in ``session``)."""
        if isinstance(locked, HeartbeatRow):  # the fast path takes only heartbeats
            assert isinstance(message, Heartbeat)
            now = utcnow()
            self._samples += history.samples_of(locked.id, message, min(message.at, now))
            return locked.apply(message, now)
        assert isinstance(locked, Device)
        device_id = locked.id
        if isinstance(message, StateReport):
            runtimes_before = list(locked.runtimes)
            device, assigned = crud.apply_state_report(
                session,
                device_id=device_id,
                report=message,
                retained=retained,
                locked=locked,
                reads=self._reads.state if self._reads else None,
            )
            self._fleet_claims.check(device_id, claimed=message.fleet, fleet=device.fleet)
            if assigned:
                logger.info("device %s assigned generation %s", device_id, device.generation)
                self._to_publish[device_id] = True
            elif list(device.runtimes) != runtimes_before:
                # another preferred runtime (new hardware, an upgraded agent) may choose
                # another variant of what it runs: re-sign only if the command changes
                self._to_publish.setdefault(device_id, False)
            return True
        if isinstance(message, Availability):
            return crud.set_availability(session, device_id=device_id, online=message.online)
        if isinstance(message, DeploymentEvent):
            return crud.apply_event(
                session,
                device_id=device_id,
                event=message,
                targets=self._reads.targets if self._reads else None,
            )
        if isinstance(message, Heartbeat):
            now = utcnow()
            self._samples += history.samples_of(device_id, message, min(message.at, now))
            return crud.apply_heartbeat(
                session, device_id=device_id, heartbeat=message, now=now, locked=locked
            )
        return False
