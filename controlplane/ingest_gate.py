"""Back-pressure between the broker and the ingest queue: a report is acknowledged to the
broker (its MQTT PUBACK, sent by hand: paho's ``manual_ack``) only once it is on the
queue.

While the queue has room, each report goes on it and is acknowledged at once, as paho
would. When it is full, reports are held, in order and unacknowledged, and so is every
one after them until the held ones fit; the worker moves them onto the queue as it takes
work off (``release``) and acknowledges them then. The broker sends a client no more
unacknowledged QoS 1 messages than its in-flight limit (Mosquitto's
``max_inflight_messages``, 20 by default) and queues the rest for it: a flood waits at
the broker instead of being read, parsed and thrown away by the control plane, which
would spend the interpreter lock the ingest worker needs. Past ``HELD_MAX`` held reports
(a broker configured with no in-flight limit) a report is dropped and counted, as before
this existed, and acknowledged (the device's spool sends it again until the control
plane acknowledges it).

Held reports belong to one connection: their message ids mean nothing on the next, so
they are forgotten when it drops (``forget``; the broker sends again what a persistent
session did not get acknowledged).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from controlplane.ingest_queue import IngestQueue

logger = logging.getLogger(__name__)

#: Reports held unacknowledged at most (beyond: dropped and counted).
HELD_MAX = 1000

W = TypeVar("W")


class IngestGate(Generic[W]):
    """Admits received work to ``queue``, acknowledging message ``mid`` (0: QoS 0, nothing
    to acknowledge) with ``ack`` once it is on it."""

    def __init__(
        self, queue: IngestQueue[W], ack: Callable[[int], object], held_max: int = HELD_MAX
    ) -> None:
        self._queue = queue
        self._ack = ack
        self._held_max = held_max
        self._held: deque[tuple[W, int, int]] = deque()
        self._lock = threading.Lock()
        #: reports dropped: held already ``held_max``, or held when their connection dropped
        self.dropped = 0
        self._dropping = False  # in a full-queue episode (warned once)

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def admit(self, work: W, size: int, mid: int) -> None:
        """Queue ``work`` (and acknowledge it), or hold it, or drop it; never blocks."""
        with self._lock:
            if not self._held and self._queue.offer(work, size):
                self._dropping = False
                queued = True
            elif len(self._held) < self._held_max:
                self._held.append((work, size, mid))
                return
            else:
                queued = False
                self.dropped += 1
                warn, self._dropping = not self._dropping, True
        if not queued and warn:
            logger.warning(
                "ingest queue full and %s reports held: dropping reports until it drains "
                "(%s dropped so far)",
                self._held_max,
                self.dropped,
            )
        if mid:
            self._ack(mid)

    def release(self) -> None:
        """Move held work onto the queue while it fits, acknowledging each (the worker,
        after taking work off the queue)."""
        while True:
            with self._lock:
                if not self._held:
                    return
                work, size, mid = self._held[0]
                if not self._queue.offer(work, size):
                    return
                self._held.popleft()
            if mid:
                self._ack(mid)

    def forget(self) -> None:
        """The connection dropped: its held reports cannot be acknowledged any more."""
        with self._lock:
            lost = len(self._held)
            self._held.clear()
            self.dropped += lost
        if lost:
            logger.warning(
                "%d held report(s) dropped with the MQTT connection (the broker or the "
                "devices send them again)",
                lost,
            )
