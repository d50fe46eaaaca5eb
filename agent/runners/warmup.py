"""Warm-up: build an input from a runner's declared signature and run it once or more.

The input is the first set ``agent.runners.inputs.input_sets`` makes without a bootstrap
or hints: dynamic dimensions at a typical size for their rank and position (batch 1,
image 224, sequence 16), floats uniform in [0, 1), integers in a plausible range,
booleans True.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.runners.base import Runner, TensorSignature
from agent.runners.inputs import input_sets

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)


def warmup_inputs(signatures: Sequence[TensorSignature], *, seed: int = 0) -> dict[str, np.ndarray]:
    """One tensor per declared input, from the defaults of ``agent.runners.inputs``."""
    return input_sets(signatures, seed=seed)[0]


def warm_up(runner: Runner, *, iterations: int = 1) -> float:
    """Run ``iterations`` warm-up inferences; return the last one's latency in seconds."""
    inputs = warmup_inputs(runner.inputs)
    elapsed = 0.0
    for _ in range(max(1, iterations)):
        start = time.perf_counter()
        runner.infer(inputs)
        elapsed = time.perf_counter() - start
    logger.debug("warm-up of %s took %.1f ms", runner.key, elapsed * 1000)
    return elapsed
