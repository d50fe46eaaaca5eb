"""Heartbeats in batches: many reports, one transaction (``Ingester.handle_batch``).

Heartbeats are most of what a fleet sends (every device, every heartbeat interval) and
change nothing but their device's row. The MQTT bridge's worker hands over what its queue
holds (up to ``BATCH`` messages); the heartbeats among them are applied together:

1. the rows of their devices are loaded and locked in one statement (``SELECT ... FOR
   UPDATE`` in id order, so two replicas locking overlapping batches cannot deadlock);
2. each heartbeat is authenticated (its seal, and the replay window on its locked row),
   checked and applied to that row in memory, in arrival order (of several from one
   device, the newest figures win, as one by one);
3. one flush writes each changed row once (the ORM sends rows that changed the same
   columns as one executemany), and one commit ends it.

Only after the commit are the reports counted and acknowledged to their devices
(``Outcome``); if the database refuses the batch (a lock timeout, a row breaking a
constraint), it is rolled back and each heartbeat applied again in a transaction of its
own, so one bad report costs only itself. One difference from one by one: a heartbeat
refused for its content after its seal verified (malformed, naming another device, dated
in the future) still moves its device's replay window (its sequence number is spent; it
is acknowledged as lost either way).

State reports, deployment events and availability keep a transaction each: they are few,
and a state report may sign and publish a command, which must follow its own commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

from sqlmodel import Session, col, select

from controlplane.models import Device
from controlplane.report_acks import AckBook
from protocol import MAX_REPORT_BYTES, ProtocolError, TopicKind, parse_device_topic

#: At most this many queued messages are handed to ``handle_batch`` at once.
BATCH = 500


class Incoming(NamedTuple):
    """One message as the bridge received it."""

    topic: str
    payload: bytes
    retained: bool = False


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

    def add(self, other: IngestStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Outcome:
    """What a transaction's reports come to: counted and acknowledged once it commits."""

    stats: IngestStats = field(default_factory=IngestStats)
    #: (device, seq, stored, new) in the order the reports were handled
    acks: list[tuple[str, int, bool, bool]] = field(default_factory=list)

    def ack(self, device_id: str, seq: int, *, stored: bool, new: bool = True) -> None:
        self.acks.append((device_id, seq, stored, new))

    def settle(self, stats: IngestStats, book: AckBook) -> None:
        stats.add(self.stats)
        for device_id, seq, stored, new in self.acks:
            if stored:
                book.stored(device_id, seq, new=new)
            else:
                book.lost(device_id, seq)


def batchable(item: Incoming) -> bool:
    """Whether ``item`` is a heartbeat the batch path takes (anything unusual is not)."""
    if item.retained or not item.payload or len(item.payload) > MAX_REPORT_BYTES:
        return False
    try:
        return parse_device_topic(item.topic)[1] is TopicKind.HEARTBEAT
    except ProtocolError:
        return False


def lock_devices(session: Session, items: Sequence[Incoming]) -> Mapping[str, Device]:
    """The rows of the devices ``items`` come from, loaded and locked in id order."""
    ids = sorted({parse_device_topic(item.topic)[0] for item in items})
    query = select(Device).where(col(Device.id).in_(ids)).order_by(col(Device.id))
    return {device.id: device for device in session.exec(query.with_for_update())}
