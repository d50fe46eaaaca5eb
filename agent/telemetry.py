"""Heartbeats: host figures from psutil, published every ``heartbeat_interval_s``."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psutil

from protocol import Heartbeat

logger = logging.getLogger(__name__)


def _load_avg() -> tuple[float, float, float]:
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):
        one, five, fifteen = psutil.getloadavg()
    return (float(one), float(five), float(fifteen))


def build_heartbeat(device_id: str, started_at: float) -> Heartbeat:
    """A Heartbeat for now; ``uptime_s`` is the agent's (not the host's) uptime."""
    mem = psutil.virtual_memory()
    return Heartbeat(
        device_id=device_id,
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        rss_bytes=int(psutil.Process().memory_info().rss),
        mem_total_bytes=int(mem.total),
        mem_available_bytes=int(mem.available),
        mem_percent=float(mem.percent),
        load_avg=_load_avg(),
        uptime_s=max(0.0, time.monotonic() - started_at),
    )


class HeartbeatLoop:
    """Calls ``send(build_heartbeat(...))`` every ``interval_s`` on its own thread."""

    def __init__(
        self, device_id: str, interval_s: float, send: Callable[[Heartbeat], None]
    ) -> None:
        self._device_id = device_id
        self._interval_s = interval_s
        self._send = send
        self._stop = threading.Event()
        self._started_at = time.monotonic()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # prime: the first reading is always 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self._device_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._send(build_heartbeat(self._device_id, self._started_at))
            except (psutil.Error, OSError, ValueError) as exc:
                logger.warning("%s: heartbeat failed: %s", self._device_id, exc)
