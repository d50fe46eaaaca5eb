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

Acknowledged by the control plane (issue 13.4): an entry with a ``report_seq`` (the
device has a report key, so the control plane can MAC acks) is not removed on PUBACK: it
then waits (``awaiting``) for the control plane's ack naming its report sequence number
(``settled``: stored or lost, ``Spool.settle``). A broker that loses what it
acknowledged (restarted without persistence, a subscriber's session gone) loses nothing:

* **gaps**: one control plane handles one device's reports in the order they were handed
  over, so when it acknowledges a report, every entry handed over before that one and
  still awaiting its ack never reached it -- unless another replica has it: with several
  replicas (a shared subscription) a device's reports are split between them, and their
  acks cross. So a gap is handed over again once it has awaited its ack for
  ``GAP_GRACE_S`` since its PUBACK (at once if it already has: after a stall);
* **window**: at most ``ACK_WINDOW`` reports are handed over and not yet acknowledged;
  newer ones wait in the spool;
* **stall**: when entries await an ack and none at all came for ``STALL_S`` (the control
  plane is away, or the last reports were lost and nothing newer follows them), the
  sender holds new entries back and sends the oldest awaiting entry again (a probe),
  ``PROBE_S`` apart at first and backing off to ``PROBE_MAX_S``, until an ack comes.
  The control plane's replay window only accepts a report a little older than the
  newest it stored (``ReplayWindow.WIDTH`` per stream), so the backlog must reach it
  oldest first: the probe is the oldest, and its ack makes every other awaiting entry a
  gap, sent again in order before anything new.

A resend the control plane had stored is acknowledged as stored (its replay window
knows it); one too old for the window to tell is acknowledged as lost, and counted lost
on both sides. Reconnecting resends nothing by itself: the control plane may not be
there yet (the reason for this scheme); the probes find it when it is back.

Duplicates: an entry the broker received but whose PUBACK had not been processed when
the process died is sent again after the restart (at most ``window`` entries, plus any
in-flight across a broker restart, as MQTT QoS 1 allows). A clean ``stop()`` waits a
moment for outstanding acknowledgements so that a planned restart sends none twice.

Driven (``wake=``, a light simulated device): no thread of its own; every event calls
``wake`` and the owner's loop calls ``step`` (one round of the loop below), also about
once a second for stalls and probes.

Locking: ``acked`` runs on paho's network thread while paho holds its own message lock,
so it only appends the mid to a list under a lock that is never held while calling
into paho; the sender thread resolves mids to sequence numbers itself.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import SpoolError
from agent.link.spool import Spool, SpoolEntry

logger = logging.getLogger(__name__)

WINDOW = 100
#: a ``send`` result meaning: this entry can never be sent (drop it)
SKIP = -1
_IDLE_WAKE_S = 1.0
#: At most this many reports handed over and not acknowledged by the control plane yet:
#: well inside its replay window (``ReplayWindow.WIDTH`` = 62 per stream), so a report
#: sent again after newer ones reached it is still one it can tell apart from a replay.
ACK_WINDOW = 32
#: No ack at all for this long while entries await one: the control plane is away.
STALL_S = 3.0
#: While it is away, the oldest awaiting entry is sent again: first after this long, then
#: twice as long after each probe that brought no ack, up to ``PROBE_MAX_S`` (each gap
#: drawn within +-20 %: a fleet whose control plane is away or behind does not probe in
#: step, nor pile probes onto a backlog).
PROBE_S = 2.0
PROBE_MAX_S = 10.0
#: A report handed over before one the control plane acknowledged is sent again once it has
#: awaited its own ack this long (since its PUBACK): enough for another replica's batch and
#: ack delay (``controlplane.report_acks.ACK_DELAY_S``), so split reports are not resent.
GAP_GRACE_S = 2.0


@dataclass(frozen=True)
class _Sent:
    """An entry handed over: its spool seq, report seq, connection and hand-over number."""

    seq: int
    report_seq: int | None
    epoch: int
    number: int


class SpoolSender:
    """Hands spool entries to ``send`` (which returns paho's mid, None or SKIP)."""

    def __init__(
        self,
        label: str,
        spool: Spool,
        send: Callable[[SpoolEntry], int | None],
        *,
        window: int = WINDOW,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """``wake``: the sender is driven by someone else's loop (a light simulated
        device's ``agent.link.network_loop``): no thread of its own; ``wake`` is called
        (from any thread) when there is something to do, and the owner then calls
        ``step`` on its loop, and also about once a second (stalls, probes)."""
        self._label = label
        self._driver_wake = wake
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
        self._settled: list[tuple[list[int], list[int]]] = []
        # sender thread only: mid -> what was handed over; the cursor is the highest seq
        # handed over by this process; awaiting: spool seq -> PUBACKed, awaiting the
        # control plane's ack (by_report: report seq -> spool seq); resend: spool seqs
        self._inflight: dict[int, _Sent] = {}
        self._awaiting: dict[int, tuple[_Sent, float]] = {}
        self._by_report: dict[int, int] = {}
        self._resend: set[int] = set()
        self._gaps: set[int] = set()  # awaiting, handed over before an acknowledged one
        self._handed = 0
        self._cursor = 0
        self._progress = time.monotonic()  # the last ack (or the first hand-over after one)
        self._probed = 0.0
        self._probe_gap = PROBE_S  # until the next probe; doubles while none is acked
        self._thread: threading.Thread | None = None

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def awaiting(self) -> int:
        """Entries the broker has, awaiting the control plane's ack."""
        return len(self._awaiting)

    def start(self) -> None:
        if self._driver_wake is not None:
            return  # driven: the owner's loop calls step()
        self._thread = threading.Thread(target=self._run, name=f"spool-{self._label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop handing over; wait up to ``timeout`` for outstanding PUBACKs; join."""
        with self._state_lock:
            self._paused = True
        deadline = time.monotonic() + timeout
        while self._inflight and self._ready and time.monotonic() < deadline:
            self._poke()
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
        self._poke()

    def disconnected(self) -> None:
        with self._state_lock:
            self._ready = False

    def notify(self) -> None:
        """Something was appended to the spool."""
        self._poke()

    def acked(self, mid: int) -> None:
        """paho's on_publish (network thread): the broker acknowledged ``mid``."""
        with self._acks_lock:
            self._acked_mids.append(mid)
        self._poke()

    def settled(self, stored: list[int], lost: list[int]) -> None:
        """The control plane's ack (network thread): report seqs it stored / lost."""
        with self._acks_lock:
            self._settled.append((stored, lost))
        self._poke()

    def _poke(self) -> None:
        self._wake.set()
        if self._driver_wake is not None:
            self._driver_wake()

    # -- the sender thread (or the owner's loop) ------------------------------------------

    def step(self) -> bool:
        """One round: apply acknowledgements, then hand over what may go now; False once
        stopping. A driven sender's owner calls it on its loop (one caller at a time)."""
        self._wake.clear()
        try:
            self._apply_acks()
            if self._stopping.is_set():
                return False
            self._pump()
        except SpoolError as exc:  # disk trouble: keep serving, try again later
            logger.warning("%s: %s", self._label, exc)
            if self._driver_wake is None:
                self._stopping.wait(_IDLE_WAKE_S)
        return True

    def _run(self) -> None:
        while self.step():
            self._wake.wait(_IDLE_WAKE_S)

    def _apply_acks(self) -> None:
        with self._acks_lock:
            mids, self._acked_mids = self._acked_mids, []
            settled, self._settled = self._settled, []
        now = time.monotonic()
        plain = []
        for sent in (self._inflight.pop(mid) for mid in mids if mid in self._inflight):
            if sent.report_seq is None:
                plain.append(sent.seq)  # the broker's PUBACK is the end of it
            else:
                self._awaiting[sent.seq] = (sent, now)
                self._by_report[sent.report_seq] = sent.seq
        if plain:
            self._spool.ack(*plain)
        for stored, lost in settled:
            self._settle(stored, lost)

    def _settle(self, stored: list[int], lost: list[int]) -> None:
        self._spool.settle(stored, lost)
        self._progress = time.monotonic()
        self._probe_gap = PROBE_S
        newest = -1
        for report_seq in (*stored, *lost):
            seq = self._by_report.pop(report_seq, None)
            if seq is not None:
                sent, _ = self._awaiting.pop(seq)
                self._resend.discard(seq)
                newest = max(newest, sent.number)
        # the control plane handles reports in the order they were handed over: what was
        # handed over before the newest one it acknowledged never reached it
        self._gaps.update(seq for seq, (sent, _) in self._awaiting.items() if sent.number < newest)

    def _gaps_due(self) -> None:
        """Gaps that awaited their ack for ``GAP_GRACE_S`` are lost: send them again."""
        if not self._gaps:
            return
        now, due = time.monotonic(), []
        for seq in list(self._gaps):
            awaiting = self._awaiting.get(seq)
            if awaiting is None:
                self._gaps.discard(seq)  # acknowledged meanwhile (another replica had it)
            elif now - awaiting[1] >= GAP_GRACE_S:
                self._gaps.discard(seq)
                due.append(seq)
        if due:
            logger.info("%s: %d report(s) lost on the way; sending again", self._label, len(due))
            self._resend.update(due)

    def _stalled(self) -> bool:
        """No ack for ``STALL_S`` while entries await one: send a probe now and then
        (the oldest awaiting entry) and nothing new."""
        now = time.monotonic()
        if not self._awaiting or now - self._progress < STALL_S:
            return False
        if now - self._probed >= self._probe_gap:
            if self._probed >= self._progress:  # an earlier probe of this stall went unacked
                self._probe_gap = min(self._probe_gap * 2, PROBE_MAX_S)
            self._probed = now
            self._probe_gap *= random.uniform(0.8, 1.2)
            self._resend.add(min(self._awaiting))  # spool order is report seq order
        return True

    def _pump(self) -> None:
        with self._state_lock:
            ready, epoch, paused = self._ready, self._epoch, self._paused
        if not ready or paused:
            return
        if any(sent.epoch < epoch for sent in self._inflight.values()):
            return  # paho re-sends those first; newer entries wait for their PUBACKs
        stalled = self._stalled()
        self._gaps_due()
        if self._resend:
            self._hand_over(self._resends(), epoch)
            if self._resend:
                return  # resends go first, oldest first: the replay window needs the order
        room = self._window - len(self._inflight)
        if room > 0 and not stalled:
            if not self._awaiting and not self._inflight:
                self._progress = time.monotonic()  # nothing outstanding: a stall starts now
            unacked = len(self._awaiting) + sum(
                1 for sent in self._inflight.values() if sent.report_seq is not None
            )
            entries = []
            for entry in self._spool.peek(room, after=self._cursor):
                if entry.report_seq is not None:
                    if unacked >= ACK_WINDOW:
                        break  # the rest waits for acks
                    unacked += 1
                entries.append(entry)
            self._hand_over(entries, epoch, new=True)

    def _resends(self) -> list[SpoolEntry]:
        """Up to the window's room of the entries to send again, oldest first; those no
        longer spooled (settled meanwhile) are forgotten."""
        wanted = sorted(self._resend)[: max(self._window - len(self._inflight), 0)]
        entries = self._spool.get(wanted)
        for seq in set(wanted) - {e.seq for e in entries}:
            self._forget(seq)
        return entries

    def _forget(self, seq: int) -> None:
        self._resend.discard(seq)
        self._gaps.discard(seq)
        sent, _ = self._awaiting.pop(seq, (None, 0.0))
        if sent is not None and sent.report_seq is not None:
            self._by_report.pop(sent.report_seq, None)

    def _hand_over(self, entries: list[SpoolEntry], epoch: int, *, new: bool = False) -> bool:
        """Hand ``entries`` to paho in order; False if the link refused one (retry later)."""
        for entry in entries:
            mid = self._send(entry)
            if mid is None:
                return False  # not handed over (link trouble): the next wake-up retries
            if new:
                self._cursor = entry.seq
            self._forget(entry.seq)
            if mid == SKIP:
                self._spool.ack(entry.seq)
            else:
                self._handed += 1
                self._inflight[mid] = _Sent(entry.seq, entry.report_seq, epoch, self._handed)
        return True
