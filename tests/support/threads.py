"""This process's threads as the kernel sees them (``/proc/self/task``)."""

from __future__ import annotations

import os
from pathlib import Path


def thread_ids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def policy(tid: int) -> int | None:
    """Thread ``tid``'s scheduling policy (``/proc``'s stat, field 41); None once it ended."""
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[38])
