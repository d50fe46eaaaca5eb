"""Traffic for simulated devices: steady in-process inferences so their figures are real.

``TrafficGenerator(agents, rate_hz)`` runs one thread per agent. Each tick (``rate_hz``
per second, start times spread over the first period) runs one inference on every model
the agent serves, through ``ServedModels.use`` as ``Agent.infer`` does, so the agent's
own metrics (what its heartbeat reports: requests, errors, p95) count it. Inputs come
from the served model's declared signature (``agent.runners.warmup.warmup_inputs``: dynamic
dimensions 1, int zeros, bool False, small random floats), built once per loaded model.

A failed request is counted (``counts``) and logged once per device at debug level; no
exception leaves a thread. A tick that falls behind is skipped, not caught up in a burst.
``stop()`` ends every thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agent.errors import ModelNotFound
from agent.runners.warmup import warmup_inputs
from agent.serving.models import LoadedModel, ServedModels

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)


class TrafficTarget(Protocol):
    """What the generator needs of a device (an ``Agent`` is one)."""

    @property
    def device_id(self) -> str: ...

    @property
    def models(self) -> ServedModels: ...


@dataclass
class TrafficCounts:
    """Requests one device's generator made: ``sent`` (all) and ``failed`` of them."""

    sent: int = 0
    failed: int = 0


class _DeviceTraffic:
    def __init__(
        self, agent: TrafficTarget, period_s: float, offset_s: float, stop: threading.Event
    ):
        self.agent = agent
        self.counts = TrafficCounts()
        self._period = period_s
        self._offset = offset_s
        self._stop = stop
        self._inputs: dict[int, dict[str, np.ndarray]] = {}
        self._logged = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"traffic-{self.agent.device_id}", daemon=True
        )
        self.thread.start()

    def _inputs_of(self, model: LoadedModel) -> dict[str, np.ndarray]:
        key = id(model)
        if (inputs := self._inputs.get(key)) is None:
            if len(self._inputs) > 16:  # models come and go with deployments
                self._inputs.clear()
            inputs = self._inputs[key] = warmup_inputs(model.runner.inputs)
        return inputs

    def _one(self, name: str) -> None:
        try:
            with self.agent.models.use(name) as model:
                model.infer(self._inputs_of(model))
        except ModelNotFound:  # removed between the snapshot and the request
            return
        except Exception as exc:  # counted; a generator never takes a device down
            self.counts.failed += 1
            if not self._logged:
                self._logged = True
                logger.debug("%s: simulated request failed: %s", self.agent.device_id, exc)
        self.counts.sent += 1

    def _run(self) -> None:
        next_at = time.monotonic() + self._offset
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            for model in self.agent.models.snapshot():
                if self._stop.is_set():
                    return
                self._one(model.name)
            next_at += self._period
            now = time.monotonic()
            if next_at < now:  # fell behind (slow models, a busy host): skip, no burst
                next_at = now + self._period - (now - next_at) % self._period


class TrafficGenerator:
    """``rate_hz`` inferences per second per model on each agent; ``start()``/``stop()``."""

    def __init__(self, agents: Sequence[TrafficTarget], rate_hz: float) -> None:
        if not rate_hz > 0:
            raise ValueError(f"traffic rate must be above 0 Hz, got {rate_hz}")
        self.rate_hz = rate_hz
        self._stop = threading.Event()
        period = 1.0 / rate_hz
        n = max(1, len(agents))
        self._devices = [
            _DeviceTraffic(agent, period, period * i / n, self._stop)
            for i, agent in enumerate(agents)
        ]

    @property
    def counts(self) -> dict[str, TrafficCounts]:
        """Per device id: what its generator sent so far."""
        return {d.agent.device_id: d.counts for d in self._devices}

    def start(self) -> None:
        self._stop.clear()
        for device in self._devices:
            device.start()
        logger.info(
            "simulated traffic: %g Hz per model on %d device(s)", self.rate_hz, len(self._devices)
        )

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for device in self._devices:
            if device.thread is not None:
                device.thread.join(max(0.0, deadline - time.monotonic()))
                device.thread = None
