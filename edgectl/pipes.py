"""A closed pipe ends edgectl quietly (``edgectl rollouts show 7 | head -1``).

When the reader of stdout goes away, writing (or the final flush) raises
``BrokenPipeError``. Like a program killed by SIGPIPE, edgectl then stops at once, with
no traceback and exit status 141 (128 + SIGPIPE, what a shell reports for ``cat``).
stdout is pointed at ``/dev/null`` first, so that the interpreter's own flush at exit
finds nothing to complain about (the recipe of the Python ``signal`` docs).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

#: The exit status after the reader of stdout went away.
EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE


def _stdout_to_devnull() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured by a test)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def quiet_on_closed_pipe(run: Callable[[], int]) -> int:
    """``run()``'s exit code, stdout flushed; :data:`EXIT_CLOSED_PIPE` if stdout's reader
    went away (also when ``run`` exits through ``SystemExit``, as ``--help`` does)."""
    try:
        try:
            return run()
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_CLOSED_PIPE
