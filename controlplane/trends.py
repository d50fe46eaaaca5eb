"""Figures over time from heartbeat samples: what the charts and the cohort view show.

Pure functions over ``controlplane.history`` samples (no database here). Devices report
``requests`` and ``errors`` as counts since the version was activated, so the traffic of
an interval is the difference of two samples; a count that goes down means the version
was activated again (the agent restarted), and the new count is that interval's traffic.

- ``rates``: per-interval requests and errors per minute, and p50/p95 as reported, of one
  device's samples of one model version;
- ``thin``: at most N points of a long series (every k-th, the last always kept);
- ``batch_figures``: each rollout batch's figures before (the previous version) and after
  (the new version), summed over its devices.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar


class Sample(Protocol):
    """What a heartbeat sample holds (``history.HeartbeatSample``, its public schema)."""

    @property
    def at(self) -> datetime: ...
    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def p50_ms(self) -> float | None: ...
    @property
    def p95_ms(self) -> float | None: ...


@dataclass(frozen=True)
class Point:
    """One interval between two samples, placed at the later one."""

    at: datetime
    requests_per_min: float
    errors_per_min: float
    p50_ms: float | None
    p95_ms: float | None

    @property
    def error_percent(self) -> float | None:
        if self.requests_per_min <= 0:
            return None
        return 100.0 * self.errors_per_min / self.requests_per_min


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _delta(before: int, after: int) -> int:
    """Traffic between two cumulative counts (a reset starts counting from 0)."""
    return after - before if after >= before else after


def rates(samples: Sequence[Sample]) -> list[Point]:
    """One point per interval of ``samples`` (oldest first; samples at the same instant as
    the one before them are skipped)."""
    points: list[Point] = []
    for before, after in itertools.pairwise(samples):
        seconds = (_utc(after.at) - _utc(before.at)).total_seconds()
        if seconds <= 0:
            continue
        per_min = 60.0 / seconds
        points.append(
            Point(
                at=_utc(after.at),
                requests_per_min=_delta(before.requests, after.requests) * per_min,
                errors_per_min=_delta(before.errors, after.errors) * per_min,
                p50_ms=after.p50_ms,
                p95_ms=after.p95_ms,
            )
        )
    return points


T = TypeVar("T")


def thin(items: Sequence[T], most: int) -> list[T]:
    """At most ``most`` of ``items``, evenly spaced, the last always kept."""
    if most <= 0:
        return []
    if len(items) <= most:
        return list(items)
    step = len(items) / most
    picked = [items[int(i * step)] for i in range(most - 1)]
    return [*picked, items[-1]]


@dataclass(frozen=True)
class Figures:
    """Summed figures of several devices: requests, errors, and the worst p95."""

    devices: int = 0
    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None

    @property
    def error_percent(self) -> float | None:
        return None if self.requests <= 0 else 100.0 * self.errors / self.requests

    def plus(self, figures: dict[str, Any] | None) -> Figures:
        if figures is None:
            return self
        p95 = figures.get("p95_ms")
        worst = self.p95_ms if p95 is None else max(self.p95_ms or 0.0, float(p95))
        return Figures(
            devices=self.devices + 1,
            requests=self.requests + int(figures.get("requests") or 0),
            errors=self.errors + int(figures.get("errors") or 0),
            p95_ms=worst,
        )


@dataclass(frozen=True)
class BatchFigures:
    index: int
    before: Figures
    after: Figures


def batch_figures(
    batches: int, devices: Iterable[tuple[int, dict[str, Any] | None, dict[str, Any] | None]]
) -> list[BatchFigures]:
    """Per batch (0 .. ``batches``-1): its devices' ``(batch, baseline, observed)``
    figures summed, before (the previous version) and after (the new one)."""
    before = [Figures() for _ in range(batches)]
    after = [Figures() for _ in range(batches)]
    for batch, baseline, observed in devices:
        if 0 <= batch < batches:
            before[batch] = before[batch].plus(baseline)
            after[batch] = after[batch].plus(observed)
    return [BatchFigures(i, before[i], after[i]) for i in range(batches)]
