"""The deployment worker's inbox: the newest pending desired state and one retry timer.

``submit`` (paho's network thread) keeps only the newest pending desired state. A
generation that failed transiently is armed with ``retry_later``: ``next`` hands it out
again once its backoff delay has passed, unless a pending desired state comes first (a
newer generation supersedes the retry; the same one re-delivered is applied at once).
"""

from __future__ import annotations

import logging
import threading
import time

from agent.deployment.retry import Backoff
from protocol import DesiredState

logger = logging.getLogger(__name__)


class Inbox:
    def __init__(self, label: str, *, retry_initial_s: float, retry_max_s: float) -> None:
        self._label = label
        self._cond = threading.Condition()
        self._pending: DesiredState | None = None
        self._retry: DesiredState | None = None
        self._retry_at = 0.0
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._stopping = False

    def submit(self, desired: DesiredState) -> None:
        """Record ``desired`` (newest generation wins); never blocks long."""
        with self._cond:
            if self._pending is None or desired.generation >= self._pending.generation:
                self._pending = desired
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def next(self) -> DesiredState | None:
        """Block until a desired state is pending or a retry is due; None when stopping."""
        with self._cond:
            while not self._stopping and self._pending is None:
                if self._retry is None:
                    self._cond.wait()
                    continue
                wait = self._retry_at - time.monotonic()
                if wait <= 0:
                    logger.info("%s: retrying generation %s", self._label, self._retry.generation)
                    return self._retry
                self._cond.wait(wait)
            if self._stopping:
                return None
            desired, self._pending = self._pending, None
            return desired

    def retry_later(self, desired: DesiredState) -> float:
        """Arm the retry of ``desired``; the delay, which doubles for the same generation."""
        with self._cond:
            if self._retry is None or self._retry.generation != desired.generation:
                self._backoff.reset()  # a new generation starts from the shortest delay
            delay = self._backoff.next()
            self._retry, self._retry_at = desired, time.monotonic() + delay
            return delay

    def cancel_retry(self) -> None:
        with self._cond:
            self._retry = None
            self._backoff.reset()
