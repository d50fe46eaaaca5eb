"""The connection slots of ``agent.serving.http_server``, and who gives one up when full.

Each connection is in one phase, changed under its own lock by the thread serving it:

- ``IDLE``: waiting for the first byte of a request (a new connection, or keep-alive
  between two requests), since it was accepted or last answered;
- ``READING``: a request begun (its first byte arrived), not yet whole;
- ``BUSY``: a whole request is being handled, or its answer written.

The fair policy (``Slots.admit``): when ``max_connections`` connections are open, a new
one takes the slot of the connection that has waited longest on its client: the oldest
``since`` (its accept, or its last answer; a request that begins does not reset it)
among the IDLE and READING ones. A client that sends its request promptly once
connected is among the newest while it is read, so it goes last; connections left idle
and slow clients go first, oldest first (nginx likewise reuses idle keep-alive
connections when it runs out). A BUSY connection is never taken: an inference with its whole request
always runs to its answer. Only when every slot is BUSY is the new connection refused
(503).

The taken connection is marked ``evicted`` and its read side shut down, which wakes its
thread: an IDLE one closes without an answer, a READING one is answered 503 and closed,
and one that turned BUSY meanwhile finishes its request and closes after the answer.
"""

from __future__ import annotations

import contextlib
import enum
import math
import select
import socket
import threading
import time


class Phase(enum.Enum):
    IDLE = "idle"
    READING = "reading"
    BUSY = "busy"


class Connection:
    """One accepted socket and its phase; ``lock`` guards ``phase``, ``since`` and
    ``evicted``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        #: waits for bytes from the client (``readable``): the socket is read without
        #: waiting (``MSG_DONTWAIT``, see ``agent.serving.http_server``)
        self._incoming = select.poll()
        self._incoming.register(sock, select.POLLIN)
        #: the kernel bounds a blocking read to the keep-alive timeout
        #: (``http_wire.idle_timeout``): the idle wait is one ``recv``, without ``poll``
        self.idle_bounded = False
        self.lock = threading.Lock()
        self.phase = Phase.IDLE
        #: since when it has waited on its client: its accept, or its last answer being
        #: ready to write (a request that begins does not reset it: a trickle still waits)
        self.since = time.monotonic()
        self.evicted = False

    def readable(self, timeout: float) -> bool:
        """Whether bytes (or the end of the stream) arrived within ``timeout`` seconds;
        a shutdown (``stop``, an eviction) wakes it at once."""
        return bool(self._incoming.poll(max(0, math.ceil(timeout * 1000))))


class Slots:
    """The open connections and their threads, at most ``limit`` of them not evicted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._threads: dict[Connection, threading.Thread] = {}

    def admit(self, conn: Connection, thread: threading.Thread) -> bool:
        """Start ``thread`` serving ``conn`` if a slot is free or one can be taken from
        the connection that has waited longest on its client; False if all are BUSY."""
        with self._lock:  # started under the lock: stop() never joins an unstarted one
            live = [c for c in self._threads if not c.evicted]
            if len(live) >= self.limit and not self._evict_one(live):
                return False
            self._threads[conn] = thread
            thread.start()
            return True

    @staticmethod
    def _evict_one(live: list[Connection]) -> bool:
        waiting = sorted((c for c in live if c.phase is not Phase.BUSY), key=lambda c: c.since)
        for victim in waiting:  # the phase read above may have moved on: check under lock
            with victim.lock:
                if victim.phase is Phase.BUSY:
                    continue
                victim.evicted = True
                with contextlib.suppress(OSError):
                    victim.sock.shutdown(socket.SHUT_RD)  # wakes its thread's recv
                return True
        return False

    def remove(self, conn: Connection) -> None:
        with self._lock:
            self._threads.pop(conn, None)

    def snapshot(self) -> dict[Connection, threading.Thread]:
        with self._lock:
            return dict(self._threads)

    def __len__(self) -> int:
        """Connections holding a slot (evicted ones on their way out do not)."""
        with self._lock:
            return sum(not c.evicted for c in self._threads)
