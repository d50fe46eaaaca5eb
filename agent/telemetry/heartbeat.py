"""Heartbeats: host figures plus per-model figures, published every ``heartbeat_interval_s``.

A heartbeat carries the host figures of ``agent.telemetry.host`` and the per-model
figures of ``MetricsRegistry.model_metrics`` (drained: a retired version is reported one
last time after its last request).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.telemetry.host import HOST_ERRORS, CpuMeter, HostFigures, host_figures
from agent.telemetry.stats import MetricsRegistry
from protocol import Heartbeat, ModelMetrics

logger = logging.getLogger(__name__)

_BEAT_ERRORS: tuple[type[Exception], ...] = (*HOST_ERRORS, ValueError)


def build_heartbeat(
    device_id: str,
    started_at: float,
    *,
    cpu: CpuMeter,
    data_dir: Path | None = None,
    models: Sequence[ModelMetrics] = (),
) -> Heartbeat:
    """A Heartbeat for now; ``uptime_s`` is the agent's (not the host's) uptime."""
    return heartbeat_of(device_id, started_at, host_figures(data_dir, cpu=cpu), models)


def heartbeat_of(
    device_id: str, started_at: float, host: HostFigures, models: Sequence[ModelMetrics]
) -> Heartbeat:
    return Heartbeat(
        device_id=device_id,
        cpu_percent=host.cpu_percent,
        rss_bytes=host.rss_bytes,
        mem_total_bytes=host.mem_total_bytes,
        mem_available_bytes=host.mem_available_bytes,
        mem_percent=host.mem_percent,
        load_avg=host.load_avg,
        uptime_s=max(0.0, time.monotonic() - started_at),
        disk=host.disk,
        temperatures=host.temperatures,
        models=list(models),
    )


class HeartbeatLoop:
    """Calls ``send(build_heartbeat(...))`` every ``interval_s`` on its own thread.

    ``data_dir``: the filesystem whose usage is reported; ``metrics``: the registry whose
    per-model figures are reported (drained at each heartbeat).
    """

    def __init__(
        self,
        device_id: str,
        interval_s: float,
        send: Callable[[Heartbeat], None],
        *,
        data_dir: Path | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._device_id = device_id
        self._interval_s = interval_s
        self._send = send
        self._data_dir = data_dir
        self._metrics = metrics
        self._stop = threading.Event()
        self._started_at = time.monotonic()
        self._cpu: CpuMeter | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._cpu = CpuMeter()  # the first heartbeat covers one interval
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self._device_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def beat(self) -> Heartbeat:
        """The heartbeat due now: host figures first, then the (drained) model figures,
        so a failed host reading does not lose a retired version's last figures."""
        cpu = self._cpu = self._cpu or CpuMeter()
        host = host_figures(self._data_dir, cpu=cpu)
        models = self._metrics.model_metrics(drain=True) if self._metrics is not None else []
        return heartbeat_of(self._device_id, self._started_at, host, models)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._send(self.beat())
            except _BEAT_ERRORS as exc:
                logger.warning("%s: heartbeat failed: %s", self._device_id, exc)
