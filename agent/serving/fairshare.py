"""Fair share of the box between the models one device serves (issue 14, point 4).

Three knobs per served model, all from ``plan``:

- ``threads``: the CPU threads its backend runs with (ORT ``intra_op_num_threads``,
  OpenVINO ``INFERENCE_NUM_THREADS``, through ``CandidateSpec.threads``). The device's
  cores (``AgentConfig.cpu_threads`` caps them) are split by priority weight
  (``WEIGHTS``: high 4, normal 2, low 1), at least one each. A model served alone gets
  every core, as before this policy existed.
- ``cores``: the cores its work may run on (``agent.serving.placement``). Models at the
  highest priority level served run anywhere (None). Each model below it is confined to
  ``threads`` cores of its own, taken from the end of the device's cores, level by
  level (the higher levels' models reserve their threads' worth from the front first);
  when the cores run out, the lowest models share the last ones. So on 2 cores a
  ``high`` light model and a ``normal`` heavy one: the heavy one works on core 1 only
  (its inference, the reading of its requests, its backend's threads), the light one
  finds core 0 free whenever a request arrives.
- ``concurrency``: how many of its requests run at once (``Gate``). Default: its thread
  count when several models are served (so a flooded model keeps at most its threads
  busy), no limit when it is alone. Up to ``QUEUE_PER_SLOT`` x that many more (at least
  ``QUEUE_MIN``) wait in a short queue (at most ``QUEUE_WAIT_S``; a waiter sleeps on a
  condition, holding no CPU or GIL); beyond that a request is refused at once with
  ``Overloaded`` (503 on the local API, counted as ``overloaded``). On the REST path the
  slot is taken before the body is decoded, so a queued or refused request costs no
  decoding.

The bundle's ``serving.threads`` / ``serving.concurrency`` override the computed share.

When models come and go: concurrency limits and cores are re-planned at once on every
activate and remove (a gate's limit is a number; cores are set per request). Threads are
fixed when a backend session is created (ORT and OpenVINO take them at load), so a model
keeps the thread count it was loaded with until it is loaded again (its next version, or
an agent restart), and a backend's own thread pool keeps the cores it was created on
(new threads inherit their creator's) as long; a new model is loaded with its share of
the current set. The sum of loaded threads may therefore exceed the cores for a while
after a model arrives; the concurrency limits, re-planned at once, bound what each model
can keep busy meanwhile.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from agent.errors import AgentError
from protocol import Priority

WEIGHTS: Mapping[Priority, int] = {Priority.HIGH: 4, Priority.NORMAL: 2, Priority.LOW: 1}
#: priority levels, highest first (``cores``: the highest one served runs anywhere)
LEVELS = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
#: queued requests allowed per concurrency slot (at least ``QUEUE_MIN``) before refusing
QUEUE_PER_SLOT = 4
QUEUE_MIN = 16
#: the longest a queued request waits for a slot before it is refused
QUEUE_WAIT_S = 5.0


class Overloaded(AgentError):
    """The model's concurrency limit and its queue are full: refused (503)."""


@dataclass(frozen=True)
class Want:
    """What one model asks for: its priority and the bundle's explicit overrides."""

    priority: Priority = Priority.NORMAL
    threads: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class Share:
    """One model's share: backend threads, concurrency (None: no limit) and the cores
    its work is confined to (None: any)."""

    priority: Priority
    threads: int
    concurrency: int | None
    cores: frozenset[int] | None = None


def device_cores(cap: int | None = None) -> tuple[int, ...]:
    """The cores this process may use (its CPU affinity), the first ``cap`` of them."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: cores by number, never confined
        cores = list(range(os.cpu_count() or 1))
    return tuple(cores[:cap] if cap else cores)


def plan(cores: int | Sequence[int], wants: Mapping[str, Want]) -> dict[str, Share]:
    """Each model's share of ``cores`` (the cores' ids, or how many: 0..n-1) by priority
    weight; overrides win."""
    ids = tuple(range(cores)) if isinstance(cores, int) else tuple(cores)
    n = max(1, len(ids))
    total = sum(WEIGHTS[w.priority] for w in wants.values()) or 1
    alone = len(wants) == 1
    shares: dict[str, Share] = {}
    for name, want in wants.items():
        computed = n if alone else max(1, (n * WEIGHTS[want.priority]) // total)
        threads = want.threads or computed
        concurrency = want.concurrency or (None if alone else threads)
        shares[name] = Share(want.priority, threads, concurrency)
    return _place(ids, shares)


def _place(ids: tuple[int, ...], shares: dict[str, Share]) -> dict[str, Share]:
    """Confine the models below the highest level served to cores of their own (see
    the module's ``cores``): the top level reserves its threads' worth from the front,
    then each lower model, level by level and by name, takes the next ``threads`` cores
    (as many as are left; the last one once none is)."""
    levels = [p for p in LEVELS if any(s.priority is p for s in shares.values())]
    if len(levels) < 2 or len(ids) < 2:
        return shares
    used = min(len(ids) - 1, sum(s.threads for s in shares.values() if s.priority is levels[0]))
    placed = dict(shares)
    for level in levels[1:]:
        for name in sorted(n for n, s in shares.items() if s.priority is level):
            share = shares[name]
            count = min(share.threads, max(1, len(ids) - used))  # what is left, or the last
            start = min(used, len(ids) - count)
            placed[name] = Share(
                share.priority,
                share.threads,
                share.concurrency,
                frozenset(ids[start : start + count]),
            )
            used = start + count
    return placed


class Gate:
    """At most ``limit`` holders at once (None: no limit), ``queue`` more waiting."""

    def __init__(self, name: str, limit: int | None = None) -> None:
        self._name = name
        #: a plain lock under the condition: a request's path takes it with ``with``
        #: (C-level enter and exit), not through ``Condition``'s Python methods, and
        #: notifies only when someone waits (on the 2-core box of ``docs/benchmarks.md``
        #: the condition's Python calls were a tenth of the local API's own Python)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._running = 0
        self._waiting = 0
        self._held = threading.local()  # re-entrant per thread: REST admits, then infers
        self.limit: int | None = None
        self.queue = 0
        self.set_limit(limit)

    def set_limit(self, limit: int | None) -> None:
        with self._cond:
            self.limit = limit
            self.queue = max(QUEUE_MIN, QUEUE_PER_SLOT * limit) if limit else 0
            self._cond.notify_all()

    def _free(self) -> bool:
        return self.limit is None or self._running < self.limit

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the model's slots for one inference, or raise ``Overloaded``."""
        if not self.enter():
            yield
            return
        try:
            yield
        finally:
            self.leave()

    def enter(self) -> bool:
        """Take one of the model's slots (``Overloaded`` if none comes); False when the
        calling thread holds one already (nothing taken: do not ``leave``). ``slot``
        as two calls, for a caller on every request's path (``LoadedModel.admitted``)."""
        held = self._held
        if getattr(held, "on", False):
            return False
        with self._lock:  # the condition's lock
            limit = self.limit
            if limit is not None and self._running >= limit:
                if self._waiting >= self.queue:
                    raise Overloaded(
                        f"model {self._name!r} is overloaded: {self.limit} running and "
                        f"{self._waiting} queued (its fair share of the device)"
                    )
                self._waiting += 1
                try:
                    ok = self._cond.wait_for(self._free, timeout=QUEUE_WAIT_S)
                finally:
                    self._waiting -= 1
                if not ok:
                    raise Overloaded(
                        f"model {self._name!r} is overloaded: no slot within {QUEUE_WAIT_S:g} s"
                    )
            self._running += 1
        held.on = True
        return True

    def leave(self) -> None:
        """Give back the slot ``enter`` took."""
        self._held.on = False
        with self._lock:  # the condition's lock
            self._running -= 1
            if self._waiting:  # counted under this lock before a waiter waits
                self._cond.notify()

    @property
    def running(self) -> int:
        with self._cond:
            return self._running

    @property
    def waiting(self) -> int:
        with self._cond:
            return self._waiting


def want_for(serving: object | None, priority: Priority | None) -> Want:
    """A model's ``Want``: the deployment's ``priority`` wins over the bundle's
    ``serving.priority`` (``model_store.BundleServing``); its threads/concurrency, if
    given, override the computed share."""
    bundle_priority = getattr(serving, "priority", None)
    return Want(
        priority=Priority(priority or bundle_priority or Priority.NORMAL),
        threads=getattr(serving, "threads", None),
        concurrency=getattr(serving, "concurrency", None),
    )
