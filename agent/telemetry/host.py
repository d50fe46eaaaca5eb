"""Host figures from psutil (a leaf: imports nothing of the agent's).

``host_figures`` reads CPU, memory, load, the filesystem holding the agent's
``data_dir`` and the temperature sensors; the heartbeat (``agent.telemetry.heartbeat``)
and ``GET /metrics`` (``agent.telemetry.prometheus``) both use it. The required figures
(CPU, memory, load) raise ``HOST_ERRORS`` if psutil cannot read them; disk and
temperatures are optional and never raise (None / empty where the platform has none).

CPU busy percent comes from a ``CpuMeter`` of the caller's own (the heartbeat loop has
one, the Prometheus scrape another), computed from ``psutil.cpu_times`` deltas as
``psutil.cpu_percent`` does. ``cpu_percent(interval=None)`` keeps its previous sample per
calling thread (psutil 7) or per process (psutil 5), so two readers would shorten each
other's windows and a new thread's first reading is always 0.0.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from protocol import DiskUsage, Temperature

logger = logging.getLogger(__name__)

#: What reading the required host figures may raise.
HOST_ERRORS: tuple[type[Exception], ...] = (psutil.Error, OSError)


class CpuMeter:
    """Host CPU busy percent between two readings of this meter (thread-safe).

    A reading less than ``min_window_s`` after the previous one returns the previous
    value, so frequent readers do not measure meaninglessly short windows.
    """

    def __init__(self, min_window_s: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._min_window_s = min_window_s
        self._times = psutil.cpu_times()
        self._at = time.monotonic()
        self._last = 0.0

    def percent(self) -> float:
        with self._lock:
            now = time.monotonic()
            if now - self._at < self._min_window_s:
                return self._last
            times = psutil.cpu_times()
            total = _total(times) - _total(self._times)
            idle = _idle(times) - _idle(self._times)
            self._times, self._at = times, now
            if total > 0:
                self._last = round(min(100.0, max(0.0, (total - idle) / total * 100.0)), 1)
            return self._last


def _total(times: Any) -> float:
    # on Linux guest time is already counted in user/nice (as psutil does)
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _idle(times: Any) -> float:
    return float(times.idle) + getattr(times, "iowait", 0.0)


def _load_avg() -> tuple[float, float, float]:
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):
        one, five, fifteen = psutil.getloadavg()
    return (float(one), float(five), float(fifteen))


def disk_usage(path: Path | None) -> DiskUsage | None:
    """Usage of the filesystem holding ``path``; None if there is no path or no answer."""
    if path is None:
        return None
    try:
        usage = psutil.disk_usage(str(path))
    except (OSError, psutil.Error) as exc:
        logger.debug("disk usage of %s unavailable: %s", path, exc)
        return None
    return DiskUsage(
        total_bytes=int(usage.total),
        used_bytes=int(usage.used),
        free_bytes=int(usage.free),
        percent=float(usage.percent),
    )


def temperatures() -> list[Temperature]:
    """Every finite sensor reading psutil knows of (empty where it has none); never raises.

    Readings without a label are named by their position; repeated (sensor, label)
    pairs get ``#2``, ``#3``... so each reading has its own name.
    """
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return []
    try:
        sensors = read() or {}
        readings: list[Temperature] = []
        seen: set[tuple[str, str]] = set()
        for sensor, entries in sorted(sensors.items()):
            for index, entry in enumerate(entries):
                celsius = float(entry.current)
                if not math.isfinite(celsius):
                    continue
                label = str(entry.label or index)
                name, n = label, 1
                while (str(sensor), name) in seen:
                    n += 1
                    name = f"{label}#{n}"
                seen.add((str(sensor), name))
                readings.append(Temperature(sensor=str(sensor), label=name, celsius=celsius))
        return readings
    except Exception as exc:  # sensor drivers fail in odd ways; never break a heartbeat
        logger.debug("temperature sensors unavailable: %s", exc)
        return []


@dataclass(frozen=True)
class HostFigures:
    cpu_percent: float
    rss_bytes: int
    mem_total_bytes: int
    mem_available_bytes: int
    mem_percent: float
    load_avg: tuple[float, float, float]
    disk: DiskUsage | None = None
    temperatures: list[Temperature] = field(default_factory=list)


def host_figures(data_dir: Path | None, *, cpu: CpuMeter) -> HostFigures:
    """The host now; HOST_ERRORS if the required figures cannot be read."""
    mem = psutil.virtual_memory()
    return HostFigures(
        cpu_percent=cpu.percent(),
        rss_bytes=int(psutil.Process().memory_info().rss),
        mem_total_bytes=int(mem.total),
        mem_available_bytes=int(mem.available),
        mem_percent=float(mem.percent),
        load_avg=_load_avg(),
        disk=disk_usage(data_dir),
        temperatures=temperatures(),
    )
