"""The deployment worker thread: the one writer of the book and the served models.

It runs ``first`` (the resumption of an interrupted deployment), then takes each piece of
work from the inbox in order until the inbox stops. A bug in one piece of work is logged
and never kills the thread (a failing command's retry is cancelled).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.deployment.inbox import Inbox, Work

logger = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        label: str,
        inbox: Inbox,
        *,
        first: Callable[[], None],
        handle: Callable[[Work], None],
    ) -> None:
        self._label = label
        self._inbox = inbox
        self._first = first
        self._handle = handle
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"deploy-{self._label}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread runs (false before start, after stop, or if it died)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._first()
        except Exception:  # a bug must not kill the worker
            logger.exception("%s: resuming the interrupted deployment failed", self._label)
        while (work := self._inbox.next()) is not None:
            try:
                self._handle(work)
            except Exception:  # a bug must not kill the worker
                logger.exception("%s: handling %s failed", self._label, work.kind)
                self._inbox.cancel_retry()
