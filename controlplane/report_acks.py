"""Acknowledgements of stored reports (issue 13.4): what the ingester committed, told
back to each device in batches so its spool may forget it.

The ingester records, per device, the sequence numbers of the spooled kinds of report
(events, heartbeats) it has committed (``stored``: new ones, and resends its replay window
knows it stored) and those it never will store (``lost``: a resend too old for the
replay window to tell, or a report it refused after its seal verified: malformed body,
another device's payload, dated in the future, refused by the database rules). The MQTT
bridge's worker sends them (``AckSender.flush``) when its queue is empty or a batch is
full or ``ACK_DELAY_S`` old: one ack per device, its ranges MACed with the device's report key
(``model_store.report_ack``), QoS 1, on ``protocol.ack_topic``. A database error acks
nothing: the device sends the report again. A device without a report key (sealing with
its ECDSA key only) gets no acks; its spool forgets a report once the broker has it.

An ack that is not delivered (the broker went away) is not retried: the device sends
those reports again and the resends are acknowledged then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from model_store.report_ack import MAX_RANGES, seal_ack, to_ranges
from model_store.report_key import ReportKey
from protocol import TopicKind
from protocol.topics import ack_topic

logger = logging.getLogger(__name__)

#: The report kinds agents spool until acknowledged.
ACKED_KINDS = frozenset({TopicKind.EVENTS, TopicKind.HEARTBEAT})
#: Flush once this many sequence numbers wait, or the oldest waited this long, even if
#: more reports are queued (under load, one ack then covers several reports of a device).
ACK_BATCH = 5_000
ACK_DELAY_S = 0.5


#: Per device, remember this many ranges of stored sequence numbers (the oldest go first).
REMEMBERED_RANGES = 64


@dataclass
class _Pending:
    stored: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)


class AckBook:
    """Per device, the sequence numbers waiting to be acknowledged (worker thread only)."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._count = 0
        #: spooled reports stored for the first time (a device's ``spool_acked`` adds
        #: up to this), and those found lost (its ``spool_lost``), since the start
        self.stored_total = 0
        self.lost_total = 0
        #: per device, ranges of the seqs stored since the start (bounded): a resend too
        #: old for the replay window that is among them is acknowledged as stored
        self._known: dict[str, list[tuple[int, int]]] = {}
        self._since: float | None = None  # when the oldest pending seq was added

    def due(self, now: float) -> bool:
        """Whether what waits should be sent even though more reports are queued."""
        return self._count >= ACK_BATCH or (
            self._since is not None and now - self._since >= ACK_DELAY_S
        )

    def knows(self, device_id: str, seq: int) -> bool:
        """Whether ``seq`` of ``device_id`` was stored by this process (as far as it
        remembers)."""
        return any(low <= seq <= high for low, high in self._known.get(device_id, ()))

    def _remember(self, device_id: str, seq: int) -> None:
        ranges = self._known.setdefault(device_id, [])
        for i, (low, high) in enumerate(ranges):
            if low - 1 <= seq <= high + 1:
                ranges[i] = (min(low, seq), max(high, seq))
                break
        else:
            ranges.append((seq, seq))
            ranges.sort()
            del ranges[:-REMEMBERED_RANGES]

    def stored(self, device_id: str, seq: int, *, new: bool = True) -> None:
        """``seq`` is stored (``new``: now; else a resend of one stored before)."""
        self._pending.setdefault(device_id, _Pending()).stored.add(seq)
        self._added()
        self.stored_total += new
        self._remember(device_id, seq)

    def lost(self, device_id: str, seq: int) -> None:
        self._pending.setdefault(device_id, _Pending()).lost.add(seq)
        self._added()
        self.lost_total += 1

    def _added(self) -> None:
        if not self._count:
            self._since = time.monotonic()
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def take(self) -> dict[str, _Pending]:
        pending, self._pending, self._count, self._since = self._pending, {}, 0, None
        return pending


class AckSender:
    """Seals and publishes what an ``AckBook`` holds; counts what it acknowledged.

    ``key_of`` gives a device's report key: the ingester's authenticator holds it for
    every device whose report it just opened (``ReportAuthenticator.report_key``), so
    acknowledging reads nothing from the database."""

    def __init__(
        self,
        key_of: Callable[[str], ReportKey | None],
        publish: Callable[[str, bytes], bool],
    ) -> None:
        self._key_of = key_of
        self._publish = publish
        #: acks published, and the sequence numbers they acknowledged as stored / lost
        self.acks_sent = 0
        self.acked_stored = 0
        self.acked_lost = 0

    def flush(self, book: AckBook) -> None:
        pending = book.take()
        if not pending:
            return
        for device_id, seqs in pending.items():
            key = self._key_of(device_id)
            if key is None:
                continue  # signs with its device key only: no acks (see above)
            stored, lost = to_ranges(seqs.stored), to_ranges(seqs.lost - seqs.stored)
            while stored or lost:
                chunk_s, stored = stored[:MAX_RANGES], stored[MAX_RANGES:]
                chunk_l, lost = lost[:MAX_RANGES], lost[MAX_RANGES:]
                raw = seal_ack(key, device_id=device_id, stored=chunk_s, lost=chunk_l)
                if not self._publish(ack_topic(device_id), raw):
                    break  # the device resends; its resends are acknowledged then
                self.acks_sent += 1
                self.acked_stored += sum(b - a + 1 for a, b in chunk_s)
                self.acked_lost += sum(b - a + 1 for a, b in chunk_l)
