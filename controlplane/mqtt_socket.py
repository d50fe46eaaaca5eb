"""paho's socket, read ahead: one ``recv`` of up to ``READ_AHEAD`` bytes serves many
packets.

paho reads every packet with three ``recv`` calls or more (its command byte, each byte
of its remaining length, then the rest). Each is a system call that lets go of the GIL
and waits to take it back from the busy ingest worker: at thousands of reports a second
that costs more than reading them. ``ReadAheadSocket`` hands paho the same bytes from a
buffer filled by one ``recv``; ``pending`` tells paho what is buffered, as an SSL socket
does, so its loop reads that before it waits in ``select`` again.

``ReadAheadClient`` is paho's ``Client`` wrapping each socket it connects (TCP or TLS)
in one; nothing else changes. It overrides ``Client._create_socket``, where paho
creates the socket of each connection (paho-mqtt 2.x).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

#: Bytes asked of the kernel per read (a few dozen reports).
READ_AHEAD = 64 * 1024


class ReadAheadSocket:
    """A connected socket whose reads go through a buffer (paho's ``SocketLike``)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        if self._at >= len(self._buffer):
            data = self._sock.recv(max(size, READ_AHEAD))  # BlockingIOError: nothing yet
            if len(data) <= size:
                return bytes(data)  # b"": the peer closed
            self._buffer, self._at = data, 0
        chunk = self._buffer[self._at : self._at + size]
        self._at += len(chunk)
        return chunk

    def pending(self) -> int:
        """Bytes paho can read without waiting: ours, and an SSL socket's own."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._at + int(inner)

    def send(self, data: bytes | bytearray) -> int:
        return int(self._sock.send(data))

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:  # anything else paho asks of the socket
        return getattr(self._sock, name)


class ReadAheadClient(mqtt.Client):
    """paho's client, reading through ``ReadAheadSocket``."""

    def _create_socket(self) -> Any:
        return ReadAheadSocket(super()._create_socket())
