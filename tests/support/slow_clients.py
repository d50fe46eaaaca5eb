"""Slow and idle HTTP clients on raw sockets: the abuse an HTTP server must survive.

``SlowClients`` opens ``trickle`` connections that send a request one byte every
``interval`` seconds (slowloris) and ``idle`` connections that send nothing, one of
each in turn, all driven from one thread once entered. It records for each when the
server ended it and how: the status of the answer it got (408, 503, ...) or none
(closed or reset without an answer).
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class SlowClient:
    sock: socket.socket
    payload: bytes  # sent one byte at a time; b"" for an idle client
    sent: int = 0
    started: float | None = None  # monotonic time of the first byte sent
    ended: float | None = None  # monotonic time the server closed or reset it
    received: bytes = b""

    @property
    def status(self) -> int | None:
        """The status of the server's answer, if it sent one before closing."""
        if self.received.startswith(b"HTTP/1.1 ") and len(self.received) >= 12:
            return int(self.received[9:12])
        return None


class SlowClients:
    """``with SlowClients(address, trickle=8, idle=8, request=raw, interval=0.25) as s:``"""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        trickle: int,
        idle: int,
        request: bytes,
        interval: float,
    ) -> None:
        self._address = address
        self._interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self.trickling: list[SlowClient] = []
        self.idle: list[SlowClient] = []
        for i in range(max(trickle, idle)):  # interleaved: trickling, idle, trickling, ...
            if i < trickle:
                self.trickling.append(self._open(request))
            if i < idle:
                self.idle.append(self._open(b""))

    def _open(self, payload: bytes) -> SlowClient:
        sock = socket.create_connection(self._address, timeout=5)
        sock.setblocking(False)
        return SlowClient(sock, payload)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for client in self.all:
            client.sock.close()

    @property
    def all(self) -> list[SlowClient]:
        return [*self.trickling, *self.idle]

    def ended(self, clients: list[SlowClient]) -> list[SlowClient]:
        """Those of ``clients`` the server has ended so far."""
        with self._lock:
            return [c for c in clients if c.ended is not None]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for client in self.all:
                    if client.ended is None:
                        self._step(client)
            self._stop.wait(self._interval)

    @staticmethod
    def _step(client: SlowClient) -> None:
        """Read what the server sent; then send the next byte, if any is left."""
        try:
            while True:
                chunk = client.sock.recv(4096)
                if not chunk:
                    client.ended = time.monotonic()
                    return
                client.received += chunk
        except BlockingIOError:
            pass
        except OSError:  # reset
            client.ended = time.monotonic()
            return
        if client.sent >= len(client.payload):
            return
        try:
            client.sock.send(client.payload[client.sent : client.sent + 1])
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                client.ended = time.monotonic()
            return
        if client.started is None:
            client.started = time.monotonic()
        client.sent += 1
