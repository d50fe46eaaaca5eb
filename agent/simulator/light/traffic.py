"""Synthetic request figures of a light simulated device (it runs no model).

Before each heartbeat, ``advance(seconds)`` records ``rate_hz * seconds`` requests per
active model into the agent's own ``MetricsRegistry``, as if they had been served: each
takes ``BASE_MS`` times a random factor (log-normal, median 1, so a p95 is about 1.8
times the median) plus what the simulator's latency knob adds for this device, model and
version. So a heartbeat carries the figures a real device would, and a rollout's latency
gate compares them as it would a real fleet's.
"""

from __future__ import annotations

import random

from agent.simulator.latency import LatencyKnob
from agent.telemetry.stats import MetricsRegistry, ModelStats
from protocol import ModelMetrics

#: The synthetic inference time (median) before the latency knob.
BASE_MS = 2.0
#: Spread of the synthetic times (sigma of the log-normal factor).
SPREAD = 0.35


class SyntheticTraffic:
    """Synthetic figures of one device (``index`` as the latency knob counts devices)."""

    def __init__(
        self, index: int, rate_hz: float, knob: LatencyKnob | None, *, seed: int | None = None
    ) -> None:
        if rate_hz < 0:
            raise ValueError(f"traffic rate must not be negative, got {rate_hz}")
        self.index = index
        self.rate_hz = rate_hz
        self._knob = knob
        self._rng = random.Random(seed if seed is not None else index)
        self._registry = MetricsRegistry()
        self._serving: dict[str, ModelStats] = {}
        self._carry: dict[str, float] = {}

    @property
    def serving(self) -> list[str]:
        """The models it makes figures for."""
        return list(self._serving)

    def serve(self, name: str, version: str, backend: str) -> None:
        """``name`` is served at ``version`` from now on (figures of the last one kept
        for one more heartbeat, as a real agent does)."""
        current = self._serving.get(name)
        if current is not None and (current.version, current.backend) == (version, backend):
            return
        self.stop(name)
        self._serving[name] = self._registry.bind(name, version, backend)

    def stop(self, name: str) -> None:
        """``name`` is no longer served."""
        stats = self._serving.pop(name, None)
        if stats is not None:
            self._registry.release(stats)
        self._carry.pop(name, None)

    def advance(self, seconds: float) -> None:
        """Record the requests of the last ``seconds`` for every served model."""
        for name, stats in self._serving.items():
            due = self.rate_hz * seconds + self._carry.get(name, 0.0)
            count = int(due)
            self._carry[name] = due - count
            extra_ms = self._knob(self.index, name, stats.version) if self._knob else 0.0
            for _ in range(count):
                ms = BASE_MS * self._rng.lognormvariate(0.0, SPREAD) + extra_ms
                stats.observe(ms / 1000.0)

    def metrics(self) -> list[ModelMetrics]:
        """The heartbeat's ``models`` (drained, as ``MetricsRegistry.model_metrics``)."""
        return self._registry.model_metrics(drain=True)
