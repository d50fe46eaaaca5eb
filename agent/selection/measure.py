"""Timing candidates on the real model: interleaved, in bursts, within a budget and a CPU share.

All candidates are timed in rounds, the order rotating each round, so that a burst of
load from anything else on the box hits every candidate alike (one window per candidate
would let one disturbance decide the ranking). A candidate runs in bursts of about
``burst_s`` back to back; the first run of each burst is dropped (a runtime whose threads
went to sleep pays a wake-up there, which a serving model under load does not), and after
the burst the measuring thread sleeps ``burst x (1 - share) / share``: selection runs a
candidate at most ``share`` of the time, so the model already serving keeps the rest.
Timing stops when the budget is spent (at least ``min_runs`` per candidate), or earlier
once the ranking is clear: after ``min_rounds`` rounds, when the fastest candidate's p50 is
``decisive`` times faster than the runner-up's. Close calls get the whole budget.

Calm bursts: a candidate's p50 is taken over its calmest bursts only (those holding
``CALM_SHARE`` of its samples, ranked by their own median; the rest still count in its
p99 and runs). Interleaving does not make a disturbance hit every candidate alike: on a
small box another process taking a core for a few tens of milliseconds slows a multi-
threaded candidate (its workers wait for that core) far more than a single-threaded one,
and only in the bursts it overlaps. On a 2-vCPU box a 30 us GRU step with two ORT
threads ran its bursts at 27 us when the other core was free and at 38-53 us when it was
not, while one thread stayed at 31-32 us (44 us when its own core was taken): whichever
candidate the busy spells happened to overlap lost, and the winner flipped between runs.
A steady stream on a quiet box sees the calm figures; the calmest bursts are what the
runtime itself costs, and what a candidate reports.

Paired rounds decide a duel (``paired_ratios``; ``policy.displaces``). The calm p50 is a
figure of the quiet box: on a box that stays busy it flatters a multi-threaded candidate by
what the busy spells cost it (a 30 us GRU step on a box at load 3-4: ORT with two threads
calm at 0.033 ms against one thread's 0.034, while back to back on that box, as a served
model runs and ``bench.selection`` re-measures, 0.036 against 0.030). In each round the two
candidates' bursts run next to each other and see the same load, whatever it is: the ratio
of their medians in that round is what the load of that moment makes of the pair, and the
spread of those ratios over the rounds shows how each fares when the box is calm and when
it is busy. A spell that overlaps one burst of a pair moves one ratio of many."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


Infer = Callable[[Mapping[str, "np.ndarray"]], dict[str, "np.ndarray"]]
#: one burst of a candidate: (its median, its samples), milliseconds
_Burst = tuple[float, "np.ndarray"]


#: the share of a candidate's samples (in its calmest bursts) its p50 is taken over
CALM_SHARE = 0.25


@dataclass(frozen=True)
class Timing:
    #: p50 over its calmest bursts holding ``CALM_SHARE`` of its runs (module docstring)
    p50_ms: float
    #: p99 over every timed run
    p99_ms: float
    runs: int
    #: the median of each of its bursts, one a round, in the order of the rounds
    #: (``paired_ratio`` pairs them with another candidate's of the same rounds)
    bursts_ms: tuple[float, ...] = ()


def warm_up(infer: Infer, inputs: Mapping[str, np.ndarray], runs: int = 3) -> dict[str, np.ndarray]:
    """Untimed runs (allocation, kernel choice); the last outputs."""
    outputs: dict[str, np.ndarray] = {}
    for _ in range(max(1, runs)):
        outputs = infer(inputs)
    return outputs


def time_interleaved(
    candidates: Mapping[str, Infer],
    inputs: Mapping[str, np.ndarray],
    *,
    budget_s: float,
    cpu_share: float = 0.5,
    burst_s: float = 0.05,
    min_runs: int = 5,
    min_rounds: int = 4,
    decisive: float = 1.25,
    clear: float = 2.0,
    clear_rounds: int = 2,
    max_runs: int = 100_000,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    hard_s: float | None = None,
) -> dict[str, Timing]:
    """p50/p99 of every candidate, timed in rotating rounds of bursts. ``hard_s``: seconds
    after which timing stops even short of ``min_runs`` (checked before each burst; a
    candidate that got no run has a NaN p50). Timing stops after ``min_rounds`` rounds
    when the fastest is ``decisive`` times faster than the rest, and already after
    ``clear_rounds`` when it is ``clear`` times faster: a candidate ten times slower needs
    no more rounds, and the time it would take is what a close call needs."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    share = min(1.0, max(0.05, cpu_share))
    keys = list(candidates)
    #: each candidate's bursts, as (median, samples): the median taken once, when the
    #: burst ends (ranking bursts each round must not eat the budget: a 6 us model
    #: runs ~8,000 times a burst)
    bursts: dict[str, list[_Burst]] = {k: [] for k in keys}
    runs = dict.fromkeys(keys, 0)
    began = clock()
    deadline = began + budget_s
    hard = began + hard_s if hard_s is not None else float("inf")
    rounds = 0
    while keys and (clock() < deadline or min(runs.values()) < min_runs):
        order = keys[rounds % len(keys) :] + keys[: rounds % len(keys)]
        rounds += 1
        if clock() >= hard:
            break
        for key in order:
            infer = candidates[key]
            if runs[key] >= max_runs or clock() >= hard:
                continue
            own: list[float] = []
            start, ran = clock(), 0
            while True:
                t0 = clock()
                infer(inputs)
                elapsed = clock() - t0
                if ran:  # the burst's first run is dropped; every burst keeps one at least
                    own.append(elapsed * 1000.0)
                ran += 1
                if ran > 1 and (
                    clock() - start >= burst_s
                    or runs[key] + len(own) >= max_runs
                    or clock() >= hard
                ):  # a burst ends at the hard stop too: the budget holds to a run, not a burst
                    break
            samples = np.asarray(own)
            bursts[key].append((float(np.median(samples)), samples))
            runs[key] += len(own)
            if share < 1.0:  # the pause gives the CPU back; never past the hard stop
                pause = (clock() - start) * (1.0 - share) / share
                sleep(max(0.0, min(pause, hard - clock())))
        if all(n >= max_runs for n in runs.values()):
            break
        if rounds >= clear_rounds and _decided(bursts, min_runs, clear):
            break
        if rounds >= min_rounds and _decided(bursts, min_runs, decisive):
            break
    timings = {}
    for key, own_bursts in bursts.items():
        every = [b[1] for b in own_bursts]
        timings[key] = Timing(
            p50_ms=_calm(own_bursts),
            p99_ms=float(np.percentile(np.concatenate(every), 99)) if every else float("nan"),
            runs=runs[key],
            bursts_ms=tuple(b[0] for b in own_bursts),
        )
    return timings


def paired_ratios(challenger: Sequence[float], champion: Sequence[float]) -> list[float]:
    """Per round, ``challenger``'s burst median over ``champion``'s in the same round
    (``Timing.bursts_ms``; a round one of them missed, cut by the hard stop or
    ``max_runs``, is left out: those are always the last ones). Below 1: the challenger
    was the faster in that round."""
    return [a / b for a, b in zip(challenger, champion, strict=False) if b > 0]


def calm_p50(bursts: Sequence[Sequence[float]]) -> float:
    """The p50 over the samples of the calmest bursts (ranked by their own median) that
    hold ``CALM_SHARE`` of all the samples; NaN without a sample."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    arrays = [np.asarray(b) for b in bursts if len(b)]
    return _calm([(float(np.median(a)), a) for a in arrays])


def _calm(bursts: Sequence[_Burst]) -> float:
    """``calm_p50`` of bursts whose medians are known (each holds one sample at least).

    The calmest bursts are taken until they hold ``CALM_SHARE`` of the samples, not of
    the bursts: a short burst (the last one, cut by ``max_runs``) cannot decide alone."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    if not bursts:
        return float("nan")
    need = math.ceil(sum(len(b[1]) for b in bursts) * CALM_SHARE)
    kept, held = [], 0
    for _, samples in sorted(bursts, key=lambda b: b[0]):
        kept.append(samples)
        held += len(samples)
        if held >= need:
            break
    return float(np.percentile(np.concatenate(kept), 50))


def _decided(bursts: Mapping[str, list[_Burst]], min_runs: int, decisive: float) -> bool:
    """Whether the fastest (calm) p50 is ``decisive`` times below every other one."""
    if len(bursts) < 2 or any(sum(len(b[1]) for b in own) < min_runs for own in bursts.values()):
        return False
    p50s = sorted(_calm(b) for b in bursts.values())
    return p50s[1] >= p50s[0] * decisive
