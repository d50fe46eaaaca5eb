"""The lowest CPU priority, for work that must never delay serving: a shadow's worker,
and the threads a shadow's runtime creates (``agent.serving.shadow``).

Linux gives a new thread its creator's scheduling policy and nice value (pthreads'
default, ``PTHREAD_INHERIT_SCHED``). So a runner loaded by a thread at the lowest
priority gets its runtime's pool threads, created at the load (ONNX Runtime's intra-op
pool; OpenVINO's stream threads), at that priority too: ``at_idle_priority``. Moving a
thread back up needs ``CAP_SYS_NICE``, which the agent's unit does not grant: a runner
loaded this way never serves; the version that passes its shadow period is loaded again
at serving priority (``agent.deployment.steps``).

Not covered: threads a runtime shares between its models and created before, such as
the oneTBB workers every OpenVINO model in the process uses; they keep their priority.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

#: the priority where SCHED_IDLE is unavailable (Linux nice)
IDLE_NICE = 19

T = TypeVar("T")


def lower_priority(what: str) -> None:
    """The calling thread yields the CPU to everything else: SCHED_IDLE (Linux: the
    lowest weight the scheduler has, and a waking serving thread preempts it at once),
    else nice +``IDLE_NICE``; as is where neither is possible."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
        return
    except (AttributeError, OSError) as exc:
        logger.debug("%s: no SCHED_IDLE here (%s): nice +%d", what, exc, IDLE_NICE)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), IDLE_NICE)
    except (AttributeError, OSError) as exc:
        logger.debug("%s: cannot lower the priority: %s", what, exc)


def at_idle_priority(work: Callable[[], T], *, what: str) -> T:
    """``work()``'s result (or its exception), run on a new thread at the lowest
    priority (``lower_priority``): every thread it creates inherits that priority. The
    caller waits; its own priority is untouched."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        lower_priority(what)
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller, raised there
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"idle: {what}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
