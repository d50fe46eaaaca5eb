"""Warm-up: build an input from a runner's declared signature and run it once or more.

Dynamic dimensions become 1, integers zeros, booleans False, floats small random values
(so that a backend that special-cases zeros still exercises its real kernels).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from agent.runners.base import Runner, TensorSignature

logger = logging.getLogger(__name__)


def warmup_inputs(signatures: Sequence[TensorSignature], *, seed: int = 0) -> dict[str, np.ndarray]:
    """One tensor per declared input, shaped with dynamic dims set to 1."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for sig in signatures:
        dims = sig.shape if sig.shape is not None else (None,)
        shape = tuple(1 if dim is None else dim for dim in dims)
        kind = sig.dtype.kind
        if kind == "f":
            array = (rng.random(shape) * 0.1).astype(sig.dtype)
        elif kind == "b":
            array = np.zeros(shape, dtype=np.bool_)
        elif kind in "iuc":
            array = np.zeros(shape, dtype=sig.dtype)
        elif kind in "USO":
            array = np.full(shape, "", dtype=object)
        else:
            array = np.zeros(shape, dtype=sig.dtype)
        inputs[sig.name] = array
    return inputs


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
