"""Apply device reports (state, events, heartbeats, availability) to the database.

Independent of paho: the MQTT bridge hands every received message to
:meth:`Ingester.handle`, and unit tests call it directly. ``handle`` never raises: a
malformed or forged message is logged in one line, counted and skipped.

Nothing depends on the broker's ACLs: a report is believed only if it is sealed by the
key the device its topic names enrolled with, and is neither replayed nor dated in the
future (``controlplane.identity.report_auth``). Anything else is dropped, counted
(``unauthenticated``, ``replayed``, ``future``) and logged in one line. A device that was
never enrolled is never registered. A payload naming another device is rejected.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controlplane import crud
from controlplane.commands import CommandSigner, publish_commands
from controlplane.errors import ControlPlaneError
from controlplane.identity.report_auth import ReportAuthenticator, ReportRefused
from controlplane.models import Device, utcnow
from controlplane.publisher import DesiredStatePublisher
from protocol import (
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


@dataclass
class IngestStats:
    received: int = 0
    applied: int = 0
    malformed: int = 0
    rejected: int = 0
    errors: int = 0
    #: not sealed by the enrolled key of the device the topic names (or not enrolled)
    unauthenticated: int = 0
    #: a sequence number already seen (a replay; or a QoS 1 duplicate)
    replayed: int = 0
    #: dated beyond the allowed clock skew ahead of ours
    future: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Dropped(Exception):
    """A report that was counted and logged as not believed or malformed."""


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


class Ingester:
    """Turns report messages into database rows; sends new devices their signed command."""

    def __init__(
        self, engine: Engine, publisher: DesiredStatePublisher, signer: CommandSigner
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._signer = signer
        self.auth = ReportAuthenticator()
        self.stats = IngestStats()

    def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """Apply one message received on ``topic``; never raises."""
        try:
            device_id, kind = parse_device_topic(topic)
        except ProtocolError as exc:
            self.stats.rejected += 1
            logger.warning("ignored message on unexpected topic: %s", exc)
            return
        if kind is TopicKind.DESIRED or not payload:
            return  # our own desired states, or a retained message being cleared
        self.stats.received += 1
        try:
            with Session(self._engine) as session:
                applied = self._authenticated(session, topic, device_id, kind, payload, retained)
                session.commit()  # the replay window moved even if nothing else changed
        except _Dropped:
            return
        except ControlPlaneError as exc:
            self.stats.rejected += 1
            logger.warning("rejected %s from %s: %s", kind.value, device_id, exc)
            return
        except SQLAlchemyError as exc:
            self.stats.errors += 1
            logger.error(
                "database error ingesting %s from %s: %s", kind.value, device_id, _one_line(exc)
            )
            return
        except Exception as exc:  # the bridge must survive anything one message does
            self.stats.errors += 1
            logger.error("failed to ingest %s from %s: %s", kind.value, device_id, _one_line(exc))
            logger.debug("ingestion failure", exc_info=True)
            return
        if applied:
            self.stats.applied += 1
        else:
            logger.debug("%s from unknown device or deployment %s ignored", kind.value, device_id)

    def _authenticated(
        self,
        session: Session,
        topic: str,
        device_id: str,
        kind: TopicKind,
        payload: bytes,
        retained: bool,
    ) -> bool:
        """Authenticate, decode and apply one report; ``_Dropped`` (counted, logged) if it
        is not believed or malformed."""
        try:
            report = self.auth.open(session, device_id, kind, payload, now=utcnow())
        except ReportRefused as exc:
            if retained and exc.reason == "replayed":
                raise _Dropped from exc  # the broker's retained copy of what we applied
            setattr(self.stats, exc.reason, getattr(self.stats, exc.reason) + 1)
            logger.warning("dropped %s on %s (%s): %s", kind.value, topic, exc.reason, exc)
            raise _Dropped from exc
        try:
            message = decode_body(message_type_for(kind), report.body)
        except ProtocolError as exc:
            self.stats.malformed += 1
            logger.warning("dropped malformed message on %s: %s", topic, exc)
            raise _Dropped from exc
        if getattr(message, "device_id", None) != device_id:
            self.stats.rejected += 1
            logger.warning(
                "rejected %s on %s: payload names device %r",
                kind.value,
                topic,
                getattr(message, "device_id", None),
            )
            raise _Dropped
        return self._apply(session, device_id, message, retained=retained)

    def _apply(self, session: Session, device_id: str, message: object, *, retained: bool) -> bool:
        if isinstance(message, StateReport):
            known = session.get(Device, device_id)
            runtimes_before = list(known.runtimes) if known is not None else []
            device, assigned = crud.apply_state_report(
                session, device_id=device_id, report=message, retained=retained
            )
            if known is None:
                logger.info("device %s registered in fleet %s", device_id, device.fleet)
            if assigned:
                logger.info("device %s assigned generation %s", device_id, device.generation)
                publish_commands(session, self._signer, self._publisher, device_ids=[device_id])
            elif known is not None and list(device.runtimes) != runtimes_before:
                # another preferred runtime (new hardware, an upgraded agent) may choose
                # another variant of what it runs: re-sign only if the command changes
                publish_commands(
                    session,
                    self._signer,
                    self._publisher,
                    device_ids=[device_id],
                    changed_only=True,
                )
            return True
        if isinstance(message, Availability):
            return crud.set_availability(session, device_id=device_id, online=message.online)
        if isinstance(message, DeploymentEvent):
            return crud.apply_event(session, device_id=device_id, event=message)
        if isinstance(message, Heartbeat):
            return crud.apply_heartbeat(session, device_id=device_id, heartbeat=message)
        return False
