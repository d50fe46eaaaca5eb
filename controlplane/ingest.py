"""Apply device reports (state, events, heartbeats, availability) to the database.

Independent of paho: the MQTT bridge hands every received message to
:meth:`Ingester.handle`, and unit tests call it directly. ``handle`` never raises: a
malformed or forged message is logged in one line, counted and skipped.

The device id is taken from the topic (the broker's ACLs confine a device to its own
topics); a payload naming another device is rejected.
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
from controlplane.models import Device
from controlplane.publisher import DesiredStatePublisher
from protocol import (
    Availability,
    DeploymentEvent,
    Heartbeat,
    ProtocolError,
    StateReport,
    TopicKind,
    decode,
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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


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
            message = decode(message_type_for(kind), payload)
        except ProtocolError as exc:
            self.stats.malformed += 1
            logger.warning("dropped malformed message on %s: %s", topic, exc)
            return
        if getattr(message, "device_id", None) != device_id:
            self.stats.rejected += 1
            logger.warning(
                "rejected %s on %s: payload names device %r",
                kind.value,
                topic,
                getattr(message, "device_id", None),
            )
            return
        try:
            with Session(self._engine) as session:
                applied = self._apply(session, device_id, message, retained=retained)
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
