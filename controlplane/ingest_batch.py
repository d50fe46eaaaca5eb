"""Reports in batches: many reports, one transaction (``Ingester.handle_batch``).

Heartbeats are most of what a fleet sends (every device, every heartbeat interval), and a
rollout of 1,000 devices brings each of them several deployment events and state reports
within seconds. The MQTT bridge's worker hands over what its queue holds (up to ``BATCH``
messages); the heartbeats, events and state reports among them are applied together:

1. the rows of their devices are loaded and locked in one statement (``SELECT ... FOR
   UPDATE`` in id order, so two replicas locking overlapping batches cannot deadlock),
   then the open deployment targets of those that sent events, in one more
   (``BatchReads``, which also keeps each fleet's latest settled deployments once read);
2. each report is authenticated (its seal, and the replay window on its locked row),
   checked and applied, in arrival order (of several heartbeats from one device, the
   newest figures win; events move their deployment target forward; a state report
   re-derives its device's targets and may assign it a deployment);
3. one flush and one commit end it (the ORM sends rows that changed the same columns as
   one executemany; history rows go in one INSERT);
4. then the commands the batch called for (devices just assigned a deployment, or whose
   runtimes changed) are signed and published: a command never precedes the commit of
   what it follows from.

Only after the commit are the reports counted and acknowledged to their devices
(``Outcome``); if the database refuses the batch (a lock timeout, a deadlock, a row
breaking a constraint), it is rolled back and each report applied again in a transaction
of its own, so one bad report costs only itself. One difference from one by one: a report
refused for its content after its seal verified (malformed, naming another device, dated
in the future) still moves its device's replay window (its sequence number is spent; it
is acknowledged as lost either way).

Availability and retained copies keep a transaction each; one that follows a report of
the same device in the batch waits for the batch, so each device's reports keep their
order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

from sqlmodel import Session, col, select

from controlplane.crud.reports import StateReads, target_rows
from controlplane.models import DeploymentTarget, Device, TargetStatus
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


#: the kind of a message whose topic names no device's report
UNKNOWN_KIND = "unknown"


def kind_of(topic: str) -> str:
    """The kind of report ``topic`` carries (``UNKNOWN_KIND``: not a device's topic)."""
    try:
        return parse_device_topic(topic)[1].value
    except ProtocolError:
        return UNKNOWN_KIND


class KindStats:
    """``IngestStats`` per kind of report (the topic's last part: heartbeat, state, ...)."""

    def __init__(self) -> None:
        self.kinds: dict[str, IngestStats] = {}

    def of(self, kind: str) -> IngestStats:
        found = self.kinds.get(kind)
        if found is None:
            found = self.kinds[kind] = IngestStats()
        return found

    def add(self, other: KindStats) -> None:
        for kind, stats in other.kinds.items():
            self.of(kind).add(stats)

    def total(self) -> IngestStats:
        total = IngestStats()
        for stats in list(self.kinds.values()):
            total.add(stats)
        return total


@dataclass
class Outcome:
    """What a transaction's reports come to: counted and acknowledged once it commits."""

    kinds: KindStats = field(default_factory=KindStats)
    #: (device, seq, stored, new) in the order the reports were handled
    acks: list[tuple[str, int, bool, bool]] = field(default_factory=list)

    def ack(self, device_id: str, seq: int, *, stored: bool, new: bool = True) -> None:
        self.acks.append((device_id, seq, stored, new))

    def settle(self, kinds: KindStats, book: AckBook) -> None:
        kinds.add(self.kinds)
        for device_id, seq, stored, new in self.acks:
            if stored:
                book.stored(device_id, seq, new=new)
            else:
                book.lost(device_id, seq)


#: What the batch path takes: every report but availability (few, and not sealed in order
#: with the others: a will is published by the broker).
BATCHED_KINDS = frozenset({TopicKind.HEARTBEAT, TopicKind.EVENTS, TopicKind.STATE})


def batchable(item: Incoming) -> bool:
    """Whether ``item`` is a report the batch path takes (anything unusual is not)."""
    if item.retained or not item.payload or len(item.payload) > MAX_REPORT_BYTES:
        return False
    try:
        return parse_device_topic(item.topic)[1] in BATCHED_KINDS
    except ProtocolError:
        return False


def device_of(item: Incoming) -> str | None:
    """The device ``item``'s topic names (None: not a device topic)."""
    try:
        return parse_device_topic(item.topic)[0]
    except ProtocolError:
        return None


@dataclass
class BatchReads:
    """What a batch reads once for all its reports: the open deployment targets of the
    devices that sent events (locked, by (deployment id, device id)), and for its state
    reports their devices' targets and what ``crud.StateReads`` caches."""

    targets: dict[tuple[int, str], DeploymentTarget] = field(default_factory=dict)
    state: StateReads = field(default_factory=StateReads)


def _devices_sending(items: Sequence[Incoming], kind: TopicKind) -> list[str]:
    return sorted(
        {
            device_id
            for item in items
            for device_id, sent in [parse_device_topic(item.topic)]
            if sent is kind
        }
    )


def batch_reads(session: Session, items: Sequence[Incoming]) -> BatchReads:
    """The batch's reads, with the targets its events may move locked (after the device
    rows: the order of every ingest transaction; in id order). A target already
    ``activated`` or ``failed`` is left out: an event for it is loaded on its own."""
    reads = BatchReads()
    if ids := _devices_sending(items, TopicKind.EVENTS):
        query = (
            select(DeploymentTarget)
            .where(
                col(DeploymentTarget.device_id).in_(ids),
                col(DeploymentTarget.status).not_in(
                    [TargetStatus.ACTIVATED.value, TargetStatus.FAILED.value]
                ),
            )
            .order_by(col(DeploymentTarget.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        reads.targets = {(t.deployment_id, t.device_id): t for t in session.exec(query)}
    if ids := _devices_sending(items, TopicKind.STATE):
        reads.state.targets = target_rows(session, ids)
    return reads


def devices_of(items: Sequence[Incoming]) -> set[str]:
    """The devices ``items`` (device topics) come from."""
    return {parse_device_topic(item.topic)[0] for item in items}


def heartbeats_only(items: Sequence[Incoming]) -> set[str]:
    """The devices that sent only heartbeats among ``items`` (batchable reports)."""
    senders = [parse_device_topic(item.topic) for item in items]
    others = {device for device, kind in senders if kind is not TopicKind.HEARTBEAT}
    return {device for device, _ in senders} - others


def lock_devices(session: Session, items: Sequence[Incoming]) -> Mapping[str, Device]:
    """The rows of the devices ``items`` come from, loaded and locked in id order."""
    ids = sorted(devices_of(items))
    query = select(Device).where(col(Device.id).in_(ids)).order_by(col(Device.id))
    return {device.id: device for device in session.exec(query.with_for_update())}
