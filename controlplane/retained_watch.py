"""Puts back retained messages on our topics that differ from what we published.

The control plane owns two kinds of retained topics: each device's command
(``.../desired``) and the trust document (``edgefleet/v1/trust``). On the production
broker only our identity may write them (docs/broker.md); on an open broker anyone can,
and a junk or empty retained message would then sit there for every device that
(re)connects. The bridge subscribes to both and hands each message here: one that is
not byte-identical to what the database says we last published is replaced by ours (a
device without a command, or a revoked one, gets its topic cleared), logged in one line
and counted. Our own publications come back identical and change nothing: the bridge
remembers a digest of the last payload it published on each topic (``sent``), and an
echo of it (``echo``) is dropped as it arrives, without a database read (a rollout of
1,000 devices brings 1,000 of them back at once). At most one restore per topic per
``MIN_INTERVAL_S``, so a flood cannot make us flood.
"""

from __future__ import annotations

import hashlib
import logging
import time

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controlplane.commands import CommandSigner, stored_command
from controlplane.identity.enrollment import is_enrolled
from controlplane.models import DeviceCommand
from controlplane.publisher import DesiredStatePublisher
from protocol import TRUST_TOPIC, ProtocolError, TopicKind, parse_device_topic

logger = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0


def _digest(payload: bytes | bytearray) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


class RetainedWatch:
    def __init__(
        self, engine: Engine, signer: CommandSigner, publisher: DesiredStatePublisher
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._publisher = publisher
        self._last: dict[str, float] = {}
        self.restored = 0
        #: topic -> digest of the payload we last published there (16 bytes a topic)
        self._sent: dict[str, bytes] = {}

    def sent(self, topic: str, payload: bytes) -> None:
        """Remember what we just published on ``topic`` (any thread)."""
        self._sent[topic] = _digest(payload)

    def echo(self, topic: str, payload: bytes | bytearray) -> bool:
        """Whether ``payload`` is what we last published on ``topic`` (any thread)."""
        return self._sent.get(topic) == _digest(payload)

    @staticmethod
    def watches(topic: str) -> bool:
        """Whether ``topic`` is one of ours (a command or the trust document)."""
        if topic == TRUST_TOPIC:
            return True
        try:
            return parse_device_topic(topic)[1] is TopicKind.DESIRED
        except ProtocolError:
            return False

    def check(self, topic: str, payload: bytes) -> None:
        """Compare a retained message with ours; put ours back if it differs. Never raises."""
        try:
            with Session(self._engine) as session:
                if topic == TRUST_TOPIC:
                    self._check_trust(session, payload)
                else:
                    self._check_command(session, parse_device_topic(topic)[0], payload)
        except (SQLAlchemyError, ProtocolError) as exc:
            logger.error("cannot check the retained message on %s: %s", topic, exc)

    def _due(self, topic: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(topic, -MIN_INTERVAL_S) < MIN_INTERVAL_S:
            return False
        self._last[topic] = now
        return True

    def _check_trust(self, session: Session, payload: bytes) -> None:
        ours = self._signer.trust.current(session).raw()
        if payload != ours and self._due(TRUST_TOPIC):
            logger.warning("retained trust document differs from ours: putting ours back")
            self.restored += 1
            self._publisher.publish_trust(ours)

    def _check_command(self, session: Session, device_id: str, payload: bytes) -> None:
        row = session.get(DeviceCommand, device_id)
        topic = f"desired/{device_id}"
        if row is None or not is_enrolled(session, device_id):
            if payload and self._due(topic):
                logger.warning("retained command for %s that we did not sign: cleared", device_id)
                self.restored += 1
                self._publisher.clear_desired(device_id)
            return
        if bytes(row.envelope) != payload and self._due(topic):
            logger.warning(
                "retained command for %s differs from ours: putting ours back", device_id
            )
            self.restored += 1
            self._publisher.publish_desired(stored_command(row))
