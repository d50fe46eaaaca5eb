"""A stand-in for systemd's notification socket: an AF_UNIX datagram socket that records
each sd_notify message with the sender's pid (SO_PASSCRED, as systemd reads it to
enforce ``NotifyAccess=main``)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class Message:
    """One datagram: its ``KEY=value`` lines, the sender's pid, when it arrived."""

    lines: tuple[str, ...]
    pid: int
    at: float

    def get(self, key: str) -> str | None:
        for line in self.lines:
            name, _, value = line.partition("=")
            if name == key:
                return value
        return None


class NotifyListener:
    """Bound to ``address``: a filesystem path, or ``@name`` for the abstract namespace."""

    def __init__(self, address: str | Path) -> None:
        self.address = str(address)
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.bind(target)
        self.received: list[Message] = []

    def recv(self, timeout: float) -> Message | None:
        """The next message, or None if none arrives within ``timeout`` seconds."""
        self._sock.settimeout(timeout)
        try:
            data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except (TimeoutError, BlockingIOError):  # timeout 0 makes the socket non-blocking
            return None
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:12])[0]
        message = Message(tuple(data.decode().split("\n")), pid, time.monotonic())
        self.received.append(message)
        return message

    def wait_for(self, line: str, timeout: float) -> Message:
        """Receive until a message carries ``line`` (e.g. ``READY=1``); TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.recv(left)
            if message is not None and line in message.lines:
                return message
        seen = [m.lines for m in self.received[-5:]]
        raise TimeoutError(f"no {line!r} on {self.address} within {timeout}s; last: {seen}")

    def close(self) -> None:
        self._sock.close()
        if not self.address.startswith("@"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
