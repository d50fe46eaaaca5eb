"""The agent's log lines on stderr: a timestamp first, or, when stderr is the journal
stream systemd connected (``$JOURNAL_STREAM``), an ``<N>`` syslog priority first instead
(``<4>`` for a warning, sd-daemon(3)), so ``journalctl -p warning`` finds it. The agent's
child processes (the keeper, ``agent.keeper``) write theirs the same way, tagged."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

#: syslog priorities of the logging levels, highest level first (sd-daemon(3) prefixes)
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def _fields(tag: str) -> str:
    return f"%(levelname)s {tag + ' ' if tag else ''}%(name)s: %(message)s"


class JournalFormatter(logging.Formatter):
    """Lines for systemd's journal: no timestamp (journald stamps every line) and an
    ``<N>`` syslog priority before each line, continuation lines (tracebacks) included.
    ``tag`` names the process after the level (``keeper``)."""

    def __init__(self, tag: str = "") -> None:
        super().__init__(_fields(tag))

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def writes_to_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected to this process:
    ``$JOURNAL_STREAM`` names its device and inode (systemd.exec(5)); a redirection by a
    child's parent (a file, a pipe) does not match."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{st.st_dev}:{st.st_ino}"


def setup_logging(verbose: bool, *, tag: str = "") -> None:
    """Log to stderr at INFO (DEBUG if ``verbose``), in the journal's form if it is one."""
    handler = logging.StreamHandler(sys.stderr)
    if writes_to_journal(sys.stderr):
        handler.setFormatter(JournalFormatter(tag))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s " + _fields(tag)))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if not verbose:  # one line per blob request is noise at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)
