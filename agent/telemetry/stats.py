"""Per-model inference metrics: counts, errors, a latency histogram.

Design
------
``MetricsRegistry`` keeps one ``ModelStats`` per (model name, version). ``ServedModels``
*binds* a stats object to every ``LoadedModel`` it activates and *releases* it when that
model is closed (after its last in-flight request). A hot swap therefore starts fresh
figures for the new version, while requests still in flight on the old one finish on
the old figures. Figures are cumulative since the version was activated on this device.
If the same version is activated again while its old figures are still held, they go on.

A released entry (no model holds it any more) is final: ``collect(drain=True)``, which
the heartbeat uses, reports it one last time and forgets it, so the telemetry always says
which version it was measured on. ``collect()`` without draining (``/metrics``) forgets
nothing.

What counts: ``observe(seconds)`` is one successful request (``LoadedModel.infer``
measures the backend call with ``perf_counter``); ``error(kind)`` is one failed request,
``invalid_input`` (the request did not fit the model: HTTP 400, the client's fault) or
``inference`` (the backend failed: HTTP 500). ``requests`` = successes + errors of both
kinds; the histogram holds successes only. The heartbeat reports the client's errors
(``CLIENT_ERRORS``) apart, as ``client_errors``: a rollout's error-rate gate counts only
``errors`` (the model's and the server's), so a buggy local client cannot trip it.

Histogram: fixed bounds from the R10 Renard series (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3,
8 per decade: log-spaced, ~26% apart) from 1 µs to 100 s, plus an overflow bucket.
``observe`` appends to a queue without a lock (a deque's append is atomic; about 0.05 µs,
it is on every request's path: ``bench.inference``); every ``FOLD_AT`` requests, and
before every snapshot, the queue is folded into the histogram under the lock (a bisect
and a few adds each). Percentiles are estimated from the buckets as
Prometheus' ``histogram_quantile`` does (linear within the bucket), clamped to the
observed minimum and maximum: within one bucket of the exact value.

``agent.telemetry.prometheus`` renders a registry's figures for ``GET /metrics``.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from protocol import ModelMetrics

logger = logging.getLogger(__name__)

_R10 = ("1", "1.25", "1.6", "2", "2.5", "3.15", "4", "5", "6.3", "8")
#: Upper bounds (seconds, inclusive) of the latency buckets; one more bucket above them.
#: observations queued by ``observe`` before they are folded into the histogram
FOLD_AT = 4096
BOUNDS: tuple[float, ...] = (
    *(float(f"{m}e{e}") for e in range(-6, 2) for m in _R10),
    100.0,
)


class ErrorKind(StrEnum):
    INVALID_INPUT = "invalid_input"
    INFERENCE = "inference"
    #: refused by the device's fair-share policy (its concurrency and queue were full)
    OVERLOADED = "overloaded"


#: Error kinds that are the client's fault (HTTP 4xx): ``ModelMetrics.client_errors``.
#: A request refused as overloaded is load shedding, not a fault of the model version.
CLIENT_ERRORS = frozenset({ErrorKind.INVALID_INPUT, ErrorKind.OVERLOADED})


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of one ``ModelStats``; ``counts[i]`` is bucket i (last: > 100 s)."""

    name: str
    version: str
    backend: str
    counts: tuple[int, ...]
    sum_s: float
    min_s: float
    max_s: float
    errors: Mapping[ErrorKind, int]

    @property
    def successes(self) -> int:
        return sum(self.counts)

    @property
    def error_count(self) -> int:
        """Failed requests of every kind."""
        return sum(self.errors.values())

    @property
    def client_error_count(self) -> int:
        """Requests refused as the client's fault (``CLIENT_ERRORS``)."""
        return sum(n for kind, n in self.errors.items() if kind in CLIENT_ERRORS)

    @property
    def requests(self) -> int:
        return self.successes + self.error_count

    def quantile(self, q: float) -> float | None:
        """Estimated ``q``-quantile (0..1) of the latency in seconds; None if no success."""
        total = self.successes
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.counts):
            if count and seen + count >= rank:
                lower = max(BOUNDS[i - 1] if i else 0.0, self.min_s)
                upper = min(BOUNDS[i] if i < len(BOUNDS) else self.max_s, self.max_s)
                return lower + (upper - lower) * max(0.0, rank - seen) / count
            seen += count
        return self.max_s

    def to_message(self) -> ModelMetrics:
        def ms(q: float) -> float | None:
            value = self.quantile(q)
            return None if value is None else value * 1000.0

        return ModelMetrics(
            name=self.name,
            version=self.version,
            backend=self.backend,
            requests=self.requests,
            errors=self.error_count - self.client_error_count,
            client_errors=self.client_error_count,
            errors_by_kind={str(k): v for k, v in self.errors.items()},
            p50_ms=ms(0.50),
            p95_ms=ms(0.95),
            p99_ms=ms(0.99),
        )


class ModelStats:
    """The figures of one model version; ``observe`` and ``error`` are thread-safe."""

    __slots__ = (
        "_counts",
        "_errors",
        "_lock",
        "_max",
        "_min",
        "_pending",
        "_sum",
        "backend",
        "holders",
        "name",
        "version",
    )

    def __init__(self, name: str, version: str, backend: str) -> None:
        self.name = name
        self.version = version
        self.backend = backend
        self.holders = 0  # LoadedModels bound to this entry (guarded by the registry)
        self._lock = threading.Lock()
        self._counts = [0] * (len(BOUNDS) + 1)
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0
        self._errors = dict.fromkeys(ErrorKind, 0)
        self._pending: deque[float] = deque()

    def observe(self, seconds: float) -> None:
        """One successful request that took ``seconds``: queued without a lock (a deque's
        append is atomic), folded into the histogram every ``FOLD_AT`` requests and
        before every snapshot."""
        pending = self._pending
        pending.append(seconds)
        if len(pending) >= FOLD_AT:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        """Move the queued observations into the histogram (under ``_lock``)."""
        pending, counts = self._pending, self._counts
        while True:
            try:
                seconds = pending.popleft()
            except IndexError:
                return
            counts[bisect_left(BOUNDS, seconds)] += 1
            self._sum += seconds
            if seconds > self._max:
                self._max = seconds
            if seconds < self._min:
                self._min = seconds

    def error(self, kind: ErrorKind) -> None:
        """One failed request."""
        with self._lock:
            self._errors[kind] += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            self._fold()
            counts, total, low, high = tuple(self._counts), self._sum, self._min, self._max
            errors = dict(self._errors)
        return StatsSnapshot(
            self.name, self.version, self.backend, counts, total, low, high, errors
        )


class MetricsRegistry:
    """(name, version) -> ModelStats, with bind/release by the served models."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], ModelStats] = {}

    def bind(self, name: str, version: str, backend: str) -> ModelStats:
        """The stats a newly activated model records into (fresh unless still held)."""
        with self._lock:
            stats = self._entries.get((name, version))
            if stats is None:
                stats = self._entries[(name, version)] = ModelStats(name, version, backend)
            stats.backend = backend
            stats.holders += 1
            return stats

    def release(self, stats: ModelStats) -> None:
        """The model bound to ``stats`` was closed: its figures are final once unheld."""
        with self._lock:
            stats.holders = max(0, stats.holders - 1)

    def collect(self, *, drain: bool = False) -> list[StatsSnapshot]:
        """Snapshots sorted by (name, version); ``drain`` forgets the released entries."""
        with self._lock:
            entries = sorted(self._entries.items())
            if drain:
                for key, stats in entries:
                    if stats.holders == 0:
                        del self._entries[key]
        return [stats.snapshot() for _, stats in entries]

    def model_metrics(self, *, drain: bool = False) -> list[ModelMetrics]:
        """The heartbeat's ``models``: one ModelMetrics per version (see ``collect``)."""
        return [s.to_message() for s in self.collect(drain=drain)]
