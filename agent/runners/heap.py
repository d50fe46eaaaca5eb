"""Give the heap a model load freed back to the system (glibc ``malloc_trim``).

Loading a model allocates far more than the loaded model keeps: OpenVINO reads the whole
ONNX graph (``ov.Model``) before compiling it, and frees it once compiled. glibc keeps
such freed memory in the process (resident) unless asked to return it: measured on
``tiny-mlp`` served on OpenVINO, ~5 MB of the agent's RSS (``bench.footprint``).
``release_free_heap()`` asks once after each load (``agent.deployment.loading``). It
takes a few milliseconds; on a C library without ``malloc_trim`` (musl, macOS) it does
nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any


def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_heap() -> None:
    """Return the free memory at the top and inside the heap's arenas to the system."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
