"""A simulated busy 2-vCPU box for the selection's timer (``time_interleaved``), on a fake
clock: a two-thread candidate ("pool", 1.0 ms calm) is slowed by half when another
process takes a core, a one-thread one ("single", 1.1 ms calm) by a tenth, and the box is
busy in three rounds of every four. Calm, "pool" is the faster; back to back on this box,
"single" is."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from agent.selection import time_interleaved
from agent.selection.measure import Timing


def time_on_a_busy_box() -> Mapping[str, Timing]:
    now = [0.0]
    bursts_begun = [0]

    def busy() -> bool:
        return (bursts_begun[0] // 2) % 4 != 0  # two bursts a round

    def run(calm_s: float, slowdown: float) -> Callable[[object], dict[str, np.ndarray]]:
        def infer(_: object) -> dict[str, np.ndarray]:
            now[0] += calm_s * (slowdown if busy() else 1.0)
            return {}

        return infer

    def sleep(s: float) -> None:
        bursts_begun[0] += 1
        now[0] += s

    return time_interleaved(
        {"pool": run(0.0010, 1.5), "single": run(0.0011, 1.1)},
        {},
        budget_s=2.0,
        cpu_share=0.5,
        clock=lambda: now[0],
        sleep=sleep,
    )


class FakeClock:
    """A fake clock, and models that advance it by a fixed time per run."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def model(self, seconds: float) -> Callable[[object], dict[str, np.ndarray]]:
        def infer(_: object) -> dict[str, np.ndarray]:
            self.now += seconds
            return {}

        return infer
