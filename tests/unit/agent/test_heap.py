"""The glibc heap: `release_free_heap` gives freed memory back; `keep_request_buffers` keeps
request-sized buffers for reuse."""

from __future__ import annotations

import subprocess
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


#: a JSON request's buffers, as the local API allocates them in a connection's thread:
#: its body, the parser's copy, the parsed values; allocated, written and freed per round
_REQUESTS = """
import sys, threading
from agent.runners import heap

def faults():
    with open("/proc/thread-self/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[7])

def serve(out):
    def request():
        body, copy, values = bytearray(3_100_000), bytearray(3_100_000), bytearray(1_200_000)
        del body, copy, values
    for _ in range(3):
        request()
    before = faults()
    for _ in range(10):
        request()
    out.append((faults() - before) / 10)

took = heap.keep_request_buffers()
out = []
thread = threading.Thread(target=serve, args=(out,))
thread.start()
thread.join()
print(took, out[0])
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or heap._MALLOPT is None, reason="glibc only"
)
def test_request_buffers_are_reused_not_faulted_in_again() -> None:
    # in a process of its own: the thresholds are process-wide and for good. Without
    # them glibc (2.36 here) trims the thread's arena after each round: ~1800 page
    # faults per round (7.4 MB touched afresh)
    done = subprocess.run(
        [sys.executable, "-c", _REQUESTS], capture_output=True, text=True, check=True, timeout=60
    )
    took, faults = done.stdout.split()
    assert took == "True"
    assert float(faults) < 50  # pages touched afresh per round (1800 would be all of them)


#: a burst of concurrent JSON requests, a connection thread each, then idle and a trim
_BURST = """
import threading
from agent.runners import heap

def rss():
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith("VmRSS:")).split()[1]) * 1024

heap.keep_request_buffers()
base = rss()
barrier = threading.Barrier(16)

def serve():
    for _ in range(5):
        barrier.wait()
        held = [bytearray(3_100_000), bytearray(3_100_000), bytearray(1_200_000)]
        barrier.wait()
        del held

threads = [threading.Thread(target=serve) for _ in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
heap.release_free_heap()
print(rss() - base)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or heap._MALLOPT is None, reason="glibc only"
)
def test_what_a_burst_of_connections_leaves_free_is_given_back() -> None:
    # without the arena cap each of the 16 threads kept its arena's free top for good:
    # +92 MB after the trim (glibc 2.36)
    done = subprocess.run(
        [sys.executable, "-c", _BURST], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(done.stdout) < 20 * MB
