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
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agent.errors import InvalidInput, ModelNotFound
from agent.runners.base import Runner
from agent.serving.fairshare import Gate, Overloaded, Share, Want, device_cores, plan
from agent.serving.placement import confined
from agent.serving.shadow import Shadow, ShadowBoard
from agent.telemetry.stats import ErrorKind, MetricsRegistry, ModelStats

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)
_now = time.perf_counter  # bound once: it is read twice on every request's path


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
    #: its fair share (``agent.serving.fairshare``): priority and overrides asked for,
    #: the share given (threads it was loaded with; concurrency re-planned live)
    want: Want = field(default_factory=Want)
    share: Share | None = None
    _gate: Gate | None = field(default=None, repr=False)
    #: one entry per request in flight: appended by ``ServedModels._hold``, popped by
    #: ``_release`` (each atomic on its own: no lock on a request's path)
    _holds: list[None] = field(default_factory=list, repr=False)
    _retired: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)
    _stats: ModelStats | None = field(default=None, repr=False)
    _extra_s: float = field(default=0.0, repr=False)
    #: a new version shadowing this one (``agent.serving.shadow``): offered each request
    shadow: Shadow | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def in_flight(self) -> int:
        """Requests holding this model now (``ServedModels.use`` / ``infer``)."""
        return len(self._holds)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend; counted once the model is served (InvalidInput by ``use``)."""
        stats = self._stats
        if stats is None:
            return self.runner.infer(inputs)
        gate, share = self._gate, self.share
        if (gate is None or gate.limit is None) and (share is None or not share.cores):
            # no limit and no cores of its own (a model served alone): no slot to take,
            # nothing to confine; the two context managers were a fifth of a 6 us call
            return self._timed(stats, inputs)
        with self.admitted(), self.placed():
            return self._timed(stats, inputs)

    def placed(self) -> AbstractContextManager[None]:
        """The calling thread confined to its share's cores while it works for this
        model (``agent.serving.placement``; nested: the innermost model's cores)."""
        share = self.share
        if share is None or not share.cores:
            return _AS_IS  # nothing to confine (a model served alone, or at the top level)
        return confined(share.cores)

    def admitted(self) -> AbstractContextManager[None]:
        """Hold one of its fair-share slots (``agent.serving.fairshare.Gate``; re-entrant
        in one thread), or raise ``Overloaded``, counted as such."""
        gate, stats = self._gate, self._stats
        if gate is None or stats is None:
            return _AS_IS
        return _Admission(gate, stats)

    def _timed(self, stats: ModelStats, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = _now()
        try:
            outputs = self.runner.infer(inputs)
            if self._extra_s > 0:  # simulated slowness (ServedModels.extra_latency)
                time.sleep(self._extra_s)
        except InvalidInput:
            raise
        except Exception:
            stats.error(ErrorKind.INFERENCE)
            raise
        elapsed = _now() - start
        stats.observe(elapsed)
        if (shadow := self.shadow) is not None:  # sampled, queued, never waited for
            shadow.offer(inputs, outputs, elapsed)
        return outputs


class ServedModels:
    """Thread-safe name -> LoadedModel map with reference-counted retirement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self.metrics = MetricsRegistry()
        #: the latest shadow period of each model (``agent.serving.shadow``)
        self.shadows = ShadowBoard()
        #: simulation only: (name, version) -> extra seconds per served inference
        self.extra_latency: Callable[[str, str], float] | None = None
        #: the fair-share policy (``agent.serving.fairshare``): on unless switched off
        #: (the benchmark's "no policy" phase); ``cores``: the ids of the cores ``plan``
        #: shares
        self.fair_share = True
        self.cores: tuple[int, ...] = device_cores()

    def share_for(
        self, name: str, want: Want, coming: Mapping[str, Want] | None = None
    ) -> Share | None:
        """The share ``name`` would get if served (with ``want``) beside the others (and
        ``coming``, models about to be loaded too): the thread count to load and select
        it with. None with the policy off."""
        if not self.fair_share:
            return None
        with self._lock:
            wants = {n: m.want for n, m in self._models.items()}
        wants.update(coming or {})
        wants[name] = want
        return plan(self.cores, wants)[name]

    def _replan(self) -> None:
        """Re-plan every served model's concurrency limit and cores (under ``_lock``)."""
        if not self.fair_share:
            return
        shares = plan(self.cores, {n: m.want for n, m in self._models.items()})
        for name, model in self._models.items():
            share = shares[name]
            threads = model.share.threads if model.share is not None else share.threads
            model.share = Share(share.priority, threads, share.concurrency, share.cores)
            if model._gate is None:
                model._gate = Gate(name, share.concurrency)
            else:
                model._gate.set_limit(share.concurrency)

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

    def use(self, name: str) -> _Use:
        """Hold ``name``'s current model for one request (a context manager giving the
        ``LoadedModel``; ModelNotFound on entering if it is not active)."""
        return _Use(self, name)

    def infer(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``name``'s current model once: ``use`` + ``LoadedModel.infer`` without a
        context manager object (the in-process API's path, ``Agent.infer``).

        ``_hold``'s and ``LoadedModel.infer``'s common case are inlined (a model not being
        swapped, served alone): each call level was 1-2 % of a 6 us model."""
        model = self._models.get(name)
        if model is None or model._retired:
            model = self._hold(name)  # not served, or being swapped: the careful way
        else:
            model._holds.append(None)
            if model._retired:  # retired meanwhile: undo, and the careful way
                self._release(model, False)
                model = self._hold(name)
        try:
            stats, gate, share = model._stats, model._gate, model.share
            if (
                stats is not None
                and (gate is None or gate.limit is None)
                and (share is None or not share.cores)
            ):
                outputs = model._timed(stats, inputs)
            else:
                outputs = model.infer(inputs)
        except InvalidInput:
            self._release(model, True)
            raise
        except BaseException:
            self._release(model, False)
            raise
        holds = model._holds  # ``_release(model, False)``, inlined: a 6 us model feels it
        holds.pop()
        if model._retired and not holds:
            self._close(model)
        return outputs

    def _hold(self, name: str) -> LoadedModel:
        """``name``'s current model, counted in flight (ModelNotFound if not active).

        No lock: a request counts itself in (an atomic append) and only then looks at
        ``_retired``; ``_retire`` sets ``_retired`` and only then counts the requests in
        flight. So either the retiring side sees this request (and the request's
        ``_release`` closes the model when it is the last one), or this request sees the
        model retired, backs out, and takes the model now in its place (``activate``
        and ``remove`` change the map before they retire). Two lock round trips were a
        tenth of a 6 us model's call (``bench.inference``)."""
        while True:
            model = self._models.get(name)  # one atomic read of the map
            if model is None:
                raise ModelNotFound(f"model {name!r} is not active")
            model._holds.append(None)
            if not model._retired or self._models.get(name) is model:
                return model  # (a retired model still in the map: activated again)
            self._release(model, False)  # swapped out meanwhile: take its successor

    def _release(self, model: LoadedModel, invalid_input: bool) -> None:
        """One request on ``model`` is over (an InvalidInput counted); closed if it was
        retired and this was its last request."""
        if invalid_input and model._stats is not None:
            model._stats.error(ErrorKind.INVALID_INPUT)
        holds = model._holds
        holds.pop()
        if model._retired and not holds:
            self._close(model)

    def placed(self, name: str) -> AbstractContextManager[None]:
        """The calling thread confined to the cores of ``name``'s current model while it
        works for it (a REST request, from its head to its answer); as it is if the
        model is not served."""
        return self.placement(name) or nullcontext()

    def placement(self, name: str) -> AbstractContextManager[None] | None:
        """``placed``, or None when there is nothing to confine (the model is not served,
        or has no cores of its own): the REST transport then enters nothing."""
        model = self._models.get(name)  # one atomic read of the map (as ``_hold``)
        share = model.share if model is not None else None
        return confined(share.cores) if share is not None and share.cores else None

    def admitted(self, name: str) -> AbstractContextManager[None]:
        """A fair-share slot of ``name``'s current model, held before a request's body is
        decoded (the REST path), so a refused request costs no decoding
        (``LoadedModel.admitted`` of ``get(name)``, inlined: it is on every request's
        path, and the map is read in one atomic step, as ``_hold`` reads it)."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"model {name!r} is not active")
        gate, stats = model._gate, model._stats
        if gate is None or stats is None:
            return _AS_IS
        return _Admission(gate, stats)

    def activate(self, model: LoadedModel) -> LoadedModel | None:
        """Serve ``model`` under its name from now on; return the model it replaced
        (which stops feeding its shadow, if it had one)."""
        if model._stats is None:
            model._stats = self.metrics.bind(model.name, model.version, model.backend)
        if self.extra_latency is not None:
            model._extra_s = max(0.0, self.extra_latency(model.name, model.version))
        with self._lock:
            previous = self._models.get(model.name)
            self._models[model.name] = model
            self._replan()
        if previous is not None and previous is not model:
            self._retire(previous)
        return previous

    def attach_shadow(self, shadow: Shadow) -> LoadedModel:
        """Offer the requests of the model serving ``shadow.name`` to ``shadow`` (the
        model it shadows is returned); ModelNotFound if none serves."""
        with self._lock:
            model = self._models.get(shadow.name)
            if model is None:
                raise ModelNotFound(f"model {shadow.name!r} is not active")
            model.shadow = shadow
        return model

    def detach_shadow(self, shadow: Shadow) -> None:
        """Stop offering requests to ``shadow`` (wherever it is attached)."""
        with self._lock:
            for model in self._models.values():
                if model.shadow is shadow:
                    model.shadow = None

    def remove(self, name: str) -> LoadedModel | None:
        with self._lock:
            previous = self._models.pop(name, None)
            self._replan()
        if previous is not None:
            self._retire(previous)
        return previous

    def clear(self) -> None:
        for model in self.snapshot():
            self.remove(model.name)

    def _retire(self, model: LoadedModel) -> None:
        """Close ``model`` once its last request in flight is done (see ``_hold``)."""
        with self._lock:
            model._retired = True
            model.shadow = None  # a retired model feeds no shadow
        if not model._holds:
            self._close(model)

    def _close(self, model: LoadedModel) -> None:
        """Close a retired model that no request holds; only the first call of the
        several that may see it so (the last release, ``_retire``, a backed-out hold)."""
        with self._lock:
            if model._closed:
                return
            model._closed = True
        try:
            model.runner.close()
        except Exception as exc:  # closing must never break a swap
            logger.warning("closing %s %s failed: %s", model.name, model.version, exc)
        stats, model._stats = model._stats, None
        if stats is not None:
            self.metrics.release(stats)


#: the context of a model with no cores of its own, or no fair-share gate
_AS_IS: AbstractContextManager[None] = nullcontext()


class _Admission:
    """``LoadedModel.admitted``: a class, not a generator (it is on every request's path)."""

    __slots__ = ("_entered", "_gate", "_stats")

    def __init__(self, gate: Gate, stats: ModelStats) -> None:
        self._gate, self._stats = gate, stats
        self._entered = False

    def __enter__(self) -> None:
        try:
            self._entered = self._gate.enter()
        except Overloaded:
            self._stats.error(ErrorKind.OVERLOADED)
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._entered:
            self._entered = False
            self._gate.leave()
        if kind is not None and issubclass(kind, Overloaded):  # e.g. a pipeline's step
            self._stats.error(ErrorKind.OVERLOADED)


class _Use:
    """``ServedModels.use``: a class, not a generator (it is on every request's path)."""

    __slots__ = ("_model", "_name", "_served")

    def __init__(self, served: ServedModels, name: str) -> None:
        self._served, self._name = served, name
        self._model: LoadedModel | None = None

    def __enter__(self) -> LoadedModel:
        self._model = self._served._hold(self._name)
        return self._model

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        model, self._model = self._model, None
        if model is not None:
            invalid = kind is not None and issubclass(kind, InvalidInput)
            self._served._release(model, invalid)
