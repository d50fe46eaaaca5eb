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
memory stays at the top of an arena for the next request; the agent calls it once at
start. Kept memory is bounded, and given back on demand: glibc gives every thread an
arena of its own (up to 8 per core), and the local API runs a thread per connection (up
to 64), so a burst of concurrent JSON requests would otherwise leave each thread's arena
holding its free top for good (measured: 16 threads, ~7 MB each, +106 MB kept, +92 MB
still after ``malloc_trim``). ``ARENA_MAX`` arenas (``M_ARENA_MAX``; the GIL serialises
most of the agent's allocations anyway) bound what stays free to about
(``ARENA_MAX`` + 1) x ``TRIM_THRESHOLD``, and ``release_free_heap()`` gives it back (the
same burst: +50 MB kept, 0 after the trim). An idle agent allocates no such blocks, so
its resident memory does not change.

On a C library without ``malloc_trim``/``mallopt`` (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any, Final

#: ``mallopt`` parameters (glibc's ``malloc.h``)
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
#: blocks up to this size are allocated on the heap, not mapped (and unmapped) one by one
MMAP_THRESHOLD: Final = 16 * 1024 * 1024
#: free memory at the top of an arena kept for reuse (one JSON request for a 224x224
#: image frees ~7 MB)
TRIM_THRESHOLD: Final = 16 * 1024 * 1024
#: malloc arenas: threads share them instead of one each (module docstring)
ARENA_MAX: Final = 2


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
    giving them back to the kernel after each request, in at most ``ARENA_MAX`` arenas
    (process-wide, for good; call it before the threads that serve start); whether the
    C library took it."""
    if _MALLOPT is None:
        return False
    took = [
        _MALLOPT(_M_ARENA_MAX, ARENA_MAX),
        _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        _MALLOPT(_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ]
    return all(took)
