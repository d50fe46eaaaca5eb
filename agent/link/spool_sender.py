"""Drains the telemetry spool into the MQTT client, in order, at-least-once.

One thread (``spool-<device>``) is the only one that hands spool entries to paho, so
they reach the broker in ``seq`` order. It hands over at most ``window`` entries that
the broker has not acknowledged yet (a big backlog drains at full speed without
holding more than ``window`` payloads in memory), and removes an entry from the spool
only when paho reports the PUBACK for its mid (``on_publish``) -- never on handing over.

Reconnects: paho keeps every QoS 1 message it was given and not yet acknowledged, and
re-sends those (DUP) right after ``on_connect`` returns, in the order it got them.
So entries handed over during an earlier connection are not handed over again; the
sender waits until they are all acknowledged before it hands over newer ones, which
keeps the order across any number of reconnects. Nothing is sent before the link says
``connected()`` (after its full state report), so on a reconnect the state comes first.

Duplicates: an entry the broker received but whose PUBACK had not been processed when
the process died is sent again after the restart (at most ``window`` entries, plus any
in-flight across a broker restart, as MQTT QoS 1 allows). A clean ``stop()`` waits a
moment for outstanding acknowledgements so that a planned restart sends none twice.

Locking: ``acked`` runs on paho's network thread while paho holds its own message lock,
so it only appends the mid to a list under a lock that is never held while calling
into paho; the sender thread resolves mids to sequence numbers itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.errors import SpoolError
from agent.link.spool import Spool, SpoolEntry

logger = logging.getLogger(__name__)

WINDOW = 100
#: a ``send`` result meaning: this entry can never be sent (drop it)
SKIP = -1
_IDLE_WAKE_S = 1.0


class SpoolSender:
    """Hands spool entries to ``send`` (which returns paho's mid, None or SKIP)."""

    def __init__(
        self,
        label: str,
        spool: Spool,
        send: Callable[[SpoolEntry], int | None],
        *,
        window: int = WINDOW,
    ) -> None:
        self._label = label
        self._spool = spool
        self._send = send
        self._window = window
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._ready = False  # connected and the state report is out
        self._paused = False
        self._epoch = 0  # connections so far
        self._acks_lock = threading.Lock()
        self._acked_mids: list[int] = []
        # sender thread only: mid -> (seq, epoch it was handed over in); the cursor is
        # the highest seq handed over by this process
        self._inflight: dict[int, tuple[int, int]] = {}
        self._cursor = 0
        self._thread: threading.Thread | None = None

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"spool-{self._label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop handing over; wait up to ``timeout`` for outstanding PUBACKs; join."""
        with self._state_lock:
            self._paused = True
        deadline = time.monotonic() + timeout
        while self._inflight and self._ready and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    # -- events from the link -----------------------------------------------------------

    def connected(self) -> None:
        """A connection is up and its state report published: resume sending."""
        with self._state_lock:
            self._epoch += 1
            self._ready = True
        self._wake.set()

    def disconnected(self) -> None:
        with self._state_lock:
            self._ready = False

    def notify(self) -> None:
        """Something was appended to the spool."""
        self._wake.set()

    def acked(self, mid: int) -> None:
        """paho's on_publish (network thread): the broker acknowledged ``mid``."""
        with self._acks_lock:
            self._acked_mids.append(mid)
        self._wake.set()

    # -- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._apply_acks()
                if self._stopping.is_set():
                    return
                self._pump()
            except SpoolError as exc:  # disk trouble: keep serving, try again later
                logger.warning("%s: %s", self._label, exc)
                self._stopping.wait(_IDLE_WAKE_S)
            self._wake.wait(_IDLE_WAKE_S)

    def _apply_acks(self) -> None:
        with self._acks_lock:
            mids, self._acked_mids = self._acked_mids, []
        seqs = [self._inflight.pop(mid)[0] for mid in mids if mid in self._inflight]
        if seqs:
            self._spool.ack(*seqs)

    def _pump(self) -> None:
        with self._state_lock:
            ready, epoch, paused = self._ready, self._epoch, self._paused
        if not ready or paused:
            return
        if any(e < epoch for _, e in self._inflight.values()):
            return  # paho re-sends those first; newer entries wait for their PUBACKs
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        for entry in self._spool.peek(room, after=self._cursor):
            mid = self._send(entry)
            if mid is None:
                return  # not handed over (link trouble): the next wake-up retries
            self._cursor = entry.seq
            if mid == SKIP:
                self._spool.ack(entry.seq)
            else:
                self._inflight[mid] = (entry.seq, epoch)
