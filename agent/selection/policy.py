"""Choosing the backend for one model: pure functions of measured candidates.

``displaces``: the selector times candidates one challenger at a time against the
current champion; a challenger takes its place only when its p50 is more than
``MARGIN_PCT`` (3%) below the champion's, measured in the same rounds, so that noise on a
busy box does not flip the winner between two runs of the same model. Where the duel gives
its per-round paired ratios (``measure.paired_ratios``), they decide: the median round
first, when it beats the margin either way; within the margin, keeping the champion must
cost more than the margin beyond what taking the challenger could, in the rounds each
fares worst in (``regrets``). ``choose`` ranks
candidates measured together (below).

Each candidate was loaded, warmed up and timed on the real model (``measure``) and its
outputs compared with an fp32 reference (``guard``). The winner is the lowest p50 among
the accurate ones; p50s within ``TIE_PCT`` percent of each other are a tie, broken by the
lower p99, then the lower memory, then the key (deterministic). A pin never gets here: it
overrides the measurement (``selector``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

#: p50s closer than this (percent of the smaller one) are a tie
TIE_PCT = 2.0


@dataclass(frozen=True)
class Measurement:
    """What selection found out about one candidate (``key``: ``runtime:device:precision``)."""

    key: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    runs: int = 0
    memory_bytes: int | None = None
    #: max abs error over the outputs, relative to the reference's max abs value
    rel_error: float | None = None
    #: why the candidate cannot be chosen (failed to load or run, inaccurate), else None
    excluded: str | None = None

    @property
    def eligible(self) -> bool:
        return self.excluded is None and self.p50_ms is not None


@dataclass(frozen=True)
class Choice:
    key: str
    reason: str
    ranked: tuple[str, ...] = field(default_factory=tuple)


class NoCandidate(Exception):
    """No candidate can serve the model (every one failed or was inaccurate)."""


def _compare(a: Measurement, b: Measurement) -> int:
    assert a.p50_ms is not None and b.p50_ms is not None
    low = min(a.p50_ms, b.p50_ms)
    if abs(a.p50_ms - b.p50_ms) > low * TIE_PCT / 100.0:
        return -1 if a.p50_ms < b.p50_ms else 1
    for x, y in ((a.p99_ms, b.p99_ms), (a.memory_bytes, b.memory_bytes)):
        if x is not None and y is not None and x != y:
            return -1 if x < y else 1
    return -1 if a.key < b.key else (1 if a.key > b.key else 0)


#: how much faster a challenger's p50 must be to displace the champion (percent of the
#: champion's, measured in the same interleaved rounds): noise must not flip the winner
MARGIN_PCT = 3.0


#: the quantiles of a duel's per-round ratios that stand for "when the box was calm" and
#: "when it was busy" for the pair (``displaces``): the worst round would be noise
REGRET_QUANTILES = (0.25, 0.75)


def _usable(ratios: Sequence[float]) -> list[float]:
    """The finite, positive ratios, in order."""
    return sorted(r for r in ratios if math.isfinite(r) and r > 0)


def median_round(ratios: Sequence[float]) -> float | None:
    """The median of a duel's usable per-round ratios (``displaces``); None without any."""
    usable = _usable(ratios)
    return _quantile(usable, 0.5) if usable else None


def regrets(ratios: Sequence[float]) -> tuple[float, float]:
    """(keeping the champion, taking the challenger): how much slower each choice was than
    the other in the rounds it fared worst in (``REGRET_QUANTILES`` of the per-round
    ``ratios``, challenger over champion; at least 1). A pair whose ranking flips with the
    load has a regret on both sides; a steady one only on the slower side."""
    ordered = sorted(ratios)
    low, high = (_quantile(ordered, q) for q in REGRET_QUANTILES)
    return max(1.0, 1.0 / low), max(1.0, high)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), without numpy."""
    at = q * (len(ordered) - 1)
    below = math.floor(at)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (at - below)


def displaces(
    champion: Measurement,
    challenger: Measurement,
    margin_pct: float,
    ratios: Sequence[float] = (),
) -> bool:
    """Whether ``challenger`` (timed against ``champion`` in the same rounds) takes its
    place: an eligible challenger more than ``margin_pct`` percent faster.

    ``ratios``, when the duel gives them (``measure.paired_ratios``: challenger over
    champion, one a round), decide. Their median first: a challenger faster by more
    than ``margin_pct`` in the median round wins, one slower by more loses (the goal is
    the p50, and the median round is what most of the duel's load made of the pair).
    Within the margin either way, a close call: the challenger wins when keeping the
    champion would cost more than ``margin_pct`` beyond what taking the challenger could
    (``regrets``), so a pair that swaps places with the box's load goes to the one whose
    bad rounds cost less, because the load the model will serve under is not the load of
    the selection's few seconds. (Regrets alone once decided every pair: a 30 us GRU step
    with two threads, 12% faster in most rounds and slower in the busy ones, lost to one
    thread, which then read 9-13% slower in ``bench.selection``'s paired re-measure.)
    Without ratios, the two p50s decide."""
    if not challenger.eligible or challenger.p50_ms is None:
        return False
    if not champion.eligible or champion.p50_ms is None:
        return True
    bar = 1.0 + margin_pct / 100.0
    usable = _usable(ratios)
    if usable:
        median = _quantile(usable, 0.5)  # ``median_round``
        if median * bar < 1.0 or median > bar:
            return median < 1.0
        keep, take = regrets(usable)
        return keep > take * bar
    return challenger.p50_ms < champion.p50_ms * (1.0 - margin_pct / 100.0)


def rank(measurements: Sequence[Measurement]) -> list[Measurement]:
    """The eligible candidates, best first."""
    eligible = [m for m in measurements if m.eligible]
    return sorted(eligible, key=functools.cmp_to_key(_compare))


def choose(measurements: Sequence[Measurement]) -> Choice:
    """The winner; ``NoCandidate`` (one line) if nothing can serve."""
    ranked = rank(measurements)
    if not ranked:
        why = "; ".join(f"{m.key}: {m.excluded}" for m in measurements) or "no candidates"
        raise NoCandidate(f"no backend can serve the model: {why}")
    best = ranked[0]
    assert best.p50_ms is not None
    reason = f"lowest p50 ({best.p50_ms:.3f} ms)"
    if len(ranked) > 1:
        second = ranked[1]
        assert second.p50_ms is not None
        if abs(second.p50_ms - best.p50_ms) <= min(second.p50_ms, best.p50_ms) * TIE_PCT / 100:
            reason = f"p50 within {TIE_PCT:g}% of {second.key}: lower p99, then memory"
    return Choice(best.key, reason, tuple(m.key for m in ranked))
