"""The glibc heap: give a model load's freed memory back, keep request buffers for reuse.

Loading a model allocates far more than the loaded model keeps: OpenVINO reads the whole
ONNX graph (``ov.Model``) before compiling it, and frees it once compiled. glibc keeps
such freed memory in the process (resident) unless asked to return it: measured on
``tiny-mlp`` served on OpenVINO, ~5 MB of the agent's RSS (``bench.footprint``).
``release_free_heap()`` asks once after each load (``agent.deployment.loading``). It
takes a few milliseconds.

Serving is the opposite case: every request allocates the same large buffers again (a
JSON request for one 224x224 image: its 3 MB body, its copy for the parser, the parsed
values, ~7 MB in all) and frees them when answered. glibc's defaults give such memory
back to the kernel after each request: blocks over its mmap threshold (128 KiB at first,
raised only as such blocks are freed) are unmapped, and a thread arena whose free top
exceeds twice that threshold is trimmed (``madvise``). The next request then touches
every page afresh: ~1800 page faults per JSON request in the agent's local API process
(``bench.peers``): its thread's CPU per request went from ~18 to ~14 ms on a loaded
2-vCPU box. ``keep_request_buffers()`` fixes both thresholds (``mallopt``) so that
blocks up to ``MMAP_THRESHOLD`` come from the heap and up to ``TRIM_THRESHOLD`` of free
memory stays in each arena for the next request; the agent calls it once at start. An
idle agent allocates no such blocks, so its resident memory does not change;
``release_free_heap()`` still trims on demand.

On a C library without ``malloc_trim``/``mallopt`` (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any, Final

#: ``mallopt`` parameters (glibc's ``malloc.h``)
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
#: blocks up to this size are allocated on the heap, not mapped (and unmapped) one by one
MMAP_THRESHOLD: Final = 16 * 1024 * 1024
#: free memory at the top of an arena kept for reuse (glibc's dynamic default ends up at
#: twice the mmap threshold too)
TRIM_THRESHOLD: Final = 2 * MMAP_THRESHOLD


def _libc_function(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")


def release_free_heap() -> None:
    """Return the free memory at the top and inside the heap's arenas to the system."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def keep_request_buffers() -> bool:
    """Keep freed blocks up to ``MMAP_THRESHOLD`` on the heap for reuse instead of
    giving them back to the kernel after each request (process-wide, for good); whether
    the C library took it."""
    if _MALLOPT is None:
        return False
    took_mmap = _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    took_trim = _MALLOPT(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(took_mmap and took_trim)
