"""``release_free_heap``: memory the process freed stops being resident (glibc)."""

from __future__ import annotations

import sys

import pytest

from agent.runners import heap

MB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or heap._MALLOC_TRIM is None, reason="glibc only"
)
def test_freed_heap_is_given_back() -> None:
    # 40 MB in 4 KiB blocks: below glibc's mmap threshold, so on the heap, and freed in
    # an order that leaves no free block at the top for free() to give back by itself
    blocks = [bytearray(4096) for _ in range(10_000)]
    keep = blocks[-1]
    del blocks
    before = _rss()
    heap.release_free_heap()
    assert before - _rss() > 20 * MB
    assert len(keep) == 4096
