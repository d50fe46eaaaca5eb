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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


Infer = Callable[[Mapping[str, "np.ndarray"]], dict[str, "np.ndarray"]]


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float
    runs: int


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
    max_runs: int = 100_000,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    hard_s: float | None = None,
) -> dict[str, Timing]:
    """p50/p99 of every candidate, timed in rotating rounds of bursts. ``hard_s``: seconds
    after which timing stops even short of ``min_runs`` (checked before each burst; a
    candidate that got no run has a NaN p50)."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    share = min(1.0, max(0.05, cpu_share))
    keys = list(candidates)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    began = clock()
    deadline = began + budget_s
    hard = began + hard_s if hard_s is not None else float("inf")
    rounds = 0
    while keys and (clock() < deadline or min(len(s) for s in samples.values()) < min_runs):
        order = keys[rounds % len(keys) :] + keys[: rounds % len(keys)]
        rounds += 1
        if clock() >= hard:
            break
        for key in order:
            infer, own = candidates[key], samples[key]
            if len(own) >= max_runs or clock() >= hard:
                continue
            start, ran = clock(), 0
            while True:
                t0 = clock()
                infer(inputs)
                elapsed = clock() - t0
                if ran:  # the burst's first run is dropped; every burst keeps one at least
                    own.append(elapsed * 1000.0)
                ran += 1
                if ran > 1 and (clock() - start >= burst_s or len(own) >= max_runs):
                    break
            if share < 1.0:  # the pause gives the CPU back; never past the hard stop
                pause = (clock() - start) * (1.0 - share) / share
                sleep(max(0.0, min(pause, hard - clock())))
        if all(len(s) >= max_runs for s in samples.values()):
            break
        if rounds >= min_rounds and _decided(samples, min_runs, decisive):
            break
    timings = {}
    for key, own in samples.items():
        arr = np.asarray(own if own else [float("nan")])
        timings[key] = Timing(
            p50_ms=float(np.percentile(arr, 50)),
            p99_ms=float(np.percentile(arr, 99)),
            runs=len(own),
        )
    return timings


def _decided(samples: Mapping[str, list[float]], min_runs: int, decisive: float) -> bool:
    """Whether the fastest p50 is ``decisive`` times below every other one."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    if len(samples) < 2 or any(len(s) < min_runs for s in samples.values()):
        return False
    p50s = sorted(float(np.percentile(np.asarray(s), 50)) for s in samples.values())
    return p50s[1] >= p50s[0] * decisive
