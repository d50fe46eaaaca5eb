"""Timing one candidate on the real model, within a time budget and a CPU share.

Warm-up runs first (not timed), then timed runs until the candidate's time budget is
spent (at least ``min_runs``, at most ``max_runs``). After each timed run that took ``d``
seconds the measuring thread sleeps ``d x (1 - share) / share``: selection then uses at
most ``share`` of one core's time, so the model already serving keeps the rest. The
sleeps are not part of the figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float
    runs: int
    outputs: dict[str, np.ndarray]


def time_candidate(
    infer: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]],
    inputs: Mapping[str, np.ndarray],
    *,
    budget_s: float,
    cpu_share: float = 0.5,
    warmup: int = 3,
    min_runs: int = 5,
    max_runs: int = 200,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> Timing:
    share = min(1.0, max(0.05, cpu_share))
    outputs: dict[str, np.ndarray] = {}
    start = clock()
    for _ in range(max(1, warmup)):
        outputs = infer(inputs)
    samples: list[float] = []
    deadline = start + budget_s
    while len(samples) < max_runs and (len(samples) < min_runs or clock() < deadline):
        t0 = clock()
        infer(inputs)
        elapsed = clock() - t0
        samples.append(elapsed * 1000.0)
        if share < 1.0:
            sleep(elapsed * (1.0 - share) / share)
    arr = np.asarray(samples)
    return Timing(
        p50_ms=float(np.percentile(arr, 50)),
        p99_ms=float(np.percentile(arr, 99)),
        runs=len(samples),
        outputs=outputs,
    )
