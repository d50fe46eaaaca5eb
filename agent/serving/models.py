"""The models being served, by name, with an atomic hot swap.

``ServedModels.use(name)`` hands out a ``LoadedModel`` for one request and counts it as
in flight; ``activate`` swaps the entry under a lock and retires the previous model,
which is closed only once its last in-flight request has finished. A request therefore
never fails because of a swap.

Metrics: ``ServedModels.metrics`` (``agent.telemetry.MetricsRegistry``) binds a
``ModelStats`` to each model when it is activated and releases it when the model is
closed, so figures are per (name, version) and those of a swapped-out version are final
once its last request is done. ``LoadedModel.infer`` times the backend call and counts
its outcome; ``use`` counts an ``InvalidInput`` raised in the request outside the
backend (a REST body that does not fit the model). Both APIs (in-process and REST) reach
models through ``use``.

Simulation only: ``ServedModels.extra_latency`` (set by ``agent.simulator``; a real agent
never sets it) gives each activated (name, version) extra seconds that ``LoadedModel.infer``
sleeps inside its timed call, so the latency figures the heartbeat reports include them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import InvalidInput, ModelNotFound
from agent.runners.base import Runner
from agent.telemetry.stats import ErrorKind, MetricsRegistry, ModelStats

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedModel:
    """A loaded runner plus what the agent reports about it."""

    name: str
    version: str
    bundle_digest: str
    bundle_dir: Path
    runner: Runner
    deployment_id: int | None = None
    #: how its backend was chosen (``agent.selection.Selection.summary``), if measured
    selection: dict[str, Any] | None = None
    #: resident memory it took when loaded and warmed up (measured; None: not measured)
    memory_bytes: int | None = None
    _in_flight: int = field(default=0, repr=False)
    _retired: bool = field(default=False, repr=False)
    _stats: ModelStats | None = field(default=None, repr=False)
    _extra_s: float = field(default=0.0, repr=False)

    @property
    def backend(self) -> str:
        return self.runner.backend

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend; counted once the model is served (InvalidInput by ``use``)."""
        stats = self._stats
        if stats is None:
            return self.runner.infer(inputs)
        start = time.perf_counter()
        try:
            outputs = self.runner.infer(inputs)
            if self._extra_s > 0:  # simulated slowness (ServedModels.extra_latency)
                time.sleep(self._extra_s)
        except InvalidInput:
            raise
        except Exception:
            stats.error(ErrorKind.INFERENCE)
            raise
        stats.observe(time.perf_counter() - start)
        return outputs


class ServedModels:
    """Thread-safe name -> LoadedModel map with reference-counted retirement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self.metrics = MetricsRegistry()
        #: simulation only: (name, version) -> extra seconds per served inference
        self.extra_latency: Callable[[str, str], float] | None = None

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"model {name!r} is not active")
        return model

    def snapshot(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._models.values(), key=lambda m: m.name)

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    @contextmanager
    def use(self, name: str) -> Iterator[LoadedModel]:
        """Hold ``name``'s current model for one request."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise ModelNotFound(f"model {name!r} is not active")
            model._in_flight += 1
        try:
            yield model
        except InvalidInput:
            if (stats := model._stats) is not None:
                stats.error(ErrorKind.INVALID_INPUT)
            raise
        finally:
            with self._lock:
                model._in_flight -= 1
                close = model._retired and model._in_flight == 0
            if close:
                self._close(model)

    def activate(self, model: LoadedModel) -> LoadedModel | None:
        """Serve ``model`` under its name from now on; return the model it replaced."""
        if model._stats is None:
            model._stats = self.metrics.bind(model.name, model.version, model.backend)
        if self.extra_latency is not None:
            model._extra_s = max(0.0, self.extra_latency(model.name, model.version))
        with self._lock:
            previous = self._models.get(model.name)
            self._models[model.name] = model
        if previous is not None and previous is not model:
            self._retire(previous)
        return previous

    def remove(self, name: str) -> LoadedModel | None:
        with self._lock:
            previous = self._models.pop(name, None)
        if previous is not None:
            self._retire(previous)
        return previous

    def clear(self) -> None:
        for model in self.snapshot():
            self.remove(model.name)

    def _retire(self, model: LoadedModel) -> None:
        with self._lock:
            model._retired = True
            close = model._in_flight == 0
        if close:
            self._close(model)

    def _close(self, model: LoadedModel) -> None:
        try:
            model.runner.close()
        except Exception as exc:  # closing must never break a swap
            logger.warning("closing %s %s failed: %s", model.name, model.version, exc)
        stats, model._stats = model._stats, None
        if stats is not None:
            self.metrics.release(stats)
