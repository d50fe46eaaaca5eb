"""The models being served, by name, with an atomic hot swap.

``ServedModels.use(name)`` hands out a ``LoadedModel`` for one request and counts it as
in flight; ``activate`` swaps the entry under a lock and retires the previous model,
which is closed only once its last in-flight request has finished. A request therefore
never fails because of a swap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.errors import ModelNotFound
from agent.runners.base import Runner

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
    _in_flight: int = field(default=0, repr=False)
    _retired: bool = field(default=False, repr=False)

    @property
    def backend(self) -> str:
        return self.runner.backend

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.infer(inputs)


class ServedModels:
    """Thread-safe name -> LoadedModel map with reference-counted retirement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}

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
        finally:
            with self._lock:
                model._in_flight -= 1
                close = model._retired and model._in_flight == 0
            if close:
                self._close(model)

    def activate(self, model: LoadedModel) -> LoadedModel | None:
        """Serve ``model`` under its name from now on; return the model it replaced."""
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

    @staticmethod
    def _close(model: LoadedModel) -> None:
        try:
            model.runner.close()
        except Exception as exc:  # closing must never break a swap
            logger.warning("closing %s %s failed: %s", model.name, model.version, exc)
