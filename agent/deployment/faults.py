"""Fault injection for crash tests: ``kill -9`` of the agent at a lifecycle point.

``EDGEFLEET_CRASH_AT=<state>`` makes the agent SIGKILL itself right after the journal
persisted ``<state>`` (before the state's side effect); ``<state>:after`` right after the
side effect, before the next state is persisted; ``restoring-<version>`` while a start
loads that committed version. Tests set it for one agent process and
restart it without; it only ever makes the agent die, never skips a check, and it is
read once at import, so it cannot be switched on over the network.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

CRASH_ENV = "EDGEFLEET_CRASH_AT"
_TARGET = os.environ.get(CRASH_ENV, "").strip()


def crash_point(state: str, *, after: bool = False) -> None:
    """SIGKILL this process if the crash target names this point."""
    if not _TARGET:
        return
    point = f"{state}:after" if after else state
    if point == _TARGET:
        logger.warning("fault injection: killing the agent at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)
