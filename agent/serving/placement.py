"""Which cores a thread may run on while it works for one model (its fair share's
``Share.cores``).

Threads and concurrency (``agent.serving.fairshare``) bound how much of the device a
model keeps busy, but not *where*: a heavy model's inference and the reading of its
large requests land on whatever core is free, and a light model's request that arrives
meanwhile waits for the kernel to switch. On a small box that wait is most of the
light model's tail latency (``docs/benchmarks.md``, ``bench.multimodel``). So a model
served below the highest priority on the device is *confined* to cores of its own
(``fairshare.plan``), and every thread that works for it is confined while it does:

- a local API connection from the moment the request's head names the model until its
  answer is written (``HttpServer``'s ``scope``: the body is read, decoded, run and
  encoded there);
- an in-process or pipeline call, for the backend call (``LoadedModel.infer``);
- loading and backend selection (``agent.deployment.steps``): a backend's own thread
  pool (ONNX Runtime's intra-op threads) is created then, by the loading thread, and
  inherits its cores for as long as the model is served.

A thread's affinity can be widened again by the process itself (unlike its nice value),
so a connection thread goes back to every core once the answer is out. Linux only
(``os.sched_setaffinity``); elsewhere nothing is confined.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

SUPPORTED = hasattr(os, "sched_setaffinity")


@contextmanager
def confined(cores: Collection[int] | None) -> Iterator[None]:
    """Run the calling thread on ``cores`` only (None: leave it as it is) until the
    block ends, then give it back the cores it had."""
    if not cores or not SUPPORTED:
        yield
        return
    before = os.sched_getaffinity(0)  # 0: the calling thread
    wanted = set(cores)
    if wanted == before:
        yield
        return
    try:
        os.sched_setaffinity(0, wanted)
    except OSError as exc:  # e.g. those cores were taken from this process since: run as is
        logger.debug("cannot confine a thread to cores %s: %s", sorted(wanted), exc)
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
