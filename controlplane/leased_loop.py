"""A daemon thread that does periodic work on one replica at a time, under a lease.

Subclasses set ``name`` (also the lease's name) and implement ``run_once``, which takes
or renews the lease (:func:`controlplane.leases.hold`) before working and sets
``holding``; :meth:`stop` wakes the thread, waits for it and releases a held lease, so
another replica takes over at once instead of after the lease's expiry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from controlplane import leases

logger = logging.getLogger(__name__)


class LeasedLoop:
    #: the thread's name and the lease's
    name = "loop"

    def __init__(
        self,
        engine: Engine,
        *,
        replica: str,
        interval_s: float,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._replica = replica
        self.interval_s = interval_s
        self._ttl = ttl
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holding = False

    def run_once(self) -> Any:
        raise NotImplementedError

    def hold(self, now: datetime) -> bool:
        """Take or renew the lease; whether this replica holds it."""
        self.holding = leases.hold(self._engine, self.name, self._replica, ttl=self._ttl, now=now)
        return self.holding

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        if self.holding:
            try:
                leases.release(self._engine, self.name, self._replica, now=self._clock())
            except Exception as exc:  # another replica waits for the expiry instead
                logger.warning("%s lease not released: %s", self.name, type(exc).__name__)
            self.holding = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()
