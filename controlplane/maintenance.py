"""Housekeeping on one replica at a time: folding and dropping heartbeat history.

A daemon thread wakes every ``interval_s`` (default ``INTERVAL_S``), takes or renews the
``maintenance`` lease (``controlplane.leases``; it lasts a few intervals) and, while it
holds it, runs ``history.downsample`` with the configured retention (and drops device
timeline entries past it, ``timeline.prune``, and audit entries past
``EDGEFLEET_AUDIT_KEEP_S``). A failure is logged
in one line and tried again at the next wake-up; a clean stop releases the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from controlplane import history, timeline
from controlplane.audit import query as audit_query
from controlplane.leased_loop import LeasedLoop
from controlplane.models import utcnow

logger = logging.getLogger(__name__)

LEASE = "maintenance"
INTERVAL_S = 300.0


class Maintenance(LeasedLoop):
    name = LEASE

    def __init__(
        self,
        engine: Engine,
        retention: history.Retention,
        *,
        replica: str,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
        audit_keep_s: int | None = None,
    ) -> None:
        ttl = timedelta(seconds=3 * interval_s)
        super().__init__(engine, replica=replica, interval_s=interval_s, ttl=ttl, clock=clock)
        self._audit_keep_s = audit_keep_s
        self._retention = retention

    def run_once(self) -> tuple[int, int] | None:
        """Fold and drop history if this replica holds the lease; what it did, or None."""
        now = self._clock()
        try:
            if not self.hold(now):
                return None
            done = history.downsample(self._engine, self._retention, now=now)
            timeline.prune(self._engine, now=now, keep_s=self._retention.keep_s)
            if self._audit_keep_s is not None:
                audit_query.prune(self._engine, now=now, keep_s=self._audit_keep_s)
            return done
        except Exception as exc:  # the database is away: try again next time
            text = str(exc).strip().splitlines()
            logger.error("maintenance failed: %s: %s", type(exc).__name__, text[0] if text else "")
            return None
