"""Free loopback ports and waiting helpers for integration tests."""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Ports handed out come from below the kernel's ephemeral range (32768-60999 on Linux),
#: so no outgoing connection's source port takes one between ``free_port`` and the bind.
PORT_RANGE = (20000, 32000)
#: A port handed out is reserved (a marker file) this long for every test process on the
#: machine, so two concurrent runs never start servers on the same port.
RESERVED_S = 300.0
_RESERVATIONS = Path(tempfile.gettempdir()) / "edgefleet-test-ports"


def _reserve(port: int) -> bool:
    """Take ``port``'s marker, or one older than ``RESERVED_S`` (its holder is done)."""
    marker = _RESERVATIONS / str(port)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        try:
            if time.time() - marker.stat().st_mtime < RESERVED_S:
                return False
            os.utime(marker)  # stale: take it over (a race here costs one more try)
            return True
        except FileNotFoundError:
            return False


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on, reserved for this test for ``RESERVED_S``."""
    _RESERVATIONS.mkdir(exist_ok=True)
    for _ in range(500):
        port = random.randrange(*PORT_RANGE)
        if _reserve(port) and _bindable(port):
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE} after 500 tries")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
