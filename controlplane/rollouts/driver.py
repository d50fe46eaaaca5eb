"""The rollout driver: a daemon thread that steps every running rollout each tick (and
brings each paused one's device rows up to what its devices reported, ``step.step``).

One replica at a time drives: every tick, a replica's driver renews (or takes over) the
``rollout-driver`` lease (``controlplane.leases``) and steps rollouts only while it holds
it. A replica that stops releases it, so another takes over at its next tick; one that
dies is taken over once its lease expires (``lease_ttl``: ``LEASE_TICKS`` ticks, at least
``MIN_LEASE_S``). Every change of driver is logged.

Each rollout is stepped in its own session and short transaction
(:func:`controlplane.rollouts.step.step`); on PostgreSQL its row is locked with
``SKIP LOCKED``, so two replicas never step one rollout at once. The commands of the
devices a step assigned are published after its commit. Everything a rollout needs is
in the database, so a restarted control plane carries on mid-batch. An exception in a
step is logged in one line and the loop goes on; a rollout whose step keeps failing
(:data:`MAX_STEP_FAILURES` ticks in a row) is paused with the error as its reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controlplane import leases
from controlplane.commands import CommandSigner, publish_commands
from controlplane.errors import ControlPlaneError
from controlplane.models import Rollout, utcnow
from controlplane.publisher import DesiredStatePublisher
from controlplane.rollouts.control import pause
from controlplane.rollouts.states import ACTIVE_STATES
from controlplane.rollouts.step import step

logger = logging.getLogger(__name__)

#: A rollout whose step fails this many ticks in a row is paused, with the error.
MAX_STEP_FAILURES = 10
#: The lease naming the replica that drives rollouts.
LEASE = "rollout-driver"
#: A driver's lease lasts this many ticks (at least MIN_LEASE_S): how long a dead
#: replica holds up rollouts before another takes over.
LEASE_TICKS = 10
MIN_LEASE_S = 5.0


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


class RolloutDriver:
    """Steps running rollouts every ``tick_s`` seconds in a thread (``start``/``stop``)."""

    def __init__(
        self,
        engine: Engine,
        signer: CommandSigner,
        publisher: DesiredStatePublisher,
        *,
        tick_s: float,
        clock: Callable[[], datetime] = utcnow,
        replica: str = "control-plane",
    ) -> None:
        """``replica``: this replica's name in the lease (unique among replicas)."""
        self._engine = engine
        self.replica = replica
        self.lease_ttl = timedelta(seconds=max(LEASE_TICKS * tick_s, MIN_LEASE_S))
        self.driving = False
        self._signer = signer
        self._publisher = publisher
        self.tick_s = tick_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        #: per rollout, how many steps in a row failed
        self._failures: dict[int, int] = {}

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rollout-driver", daemon=True)
        self._thread.start()
        logger.info("rollout driver started (every %ss)", self.tick_s)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread after the step in progress, if any."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("rollout driver did not stop within %ss", timeout)
        if self.driving:
            try:  # hand over now rather than when the lease expires
                leases.release(self._engine, LEASE, self.replica, now=self._clock())
            except Exception as exc:  # the next driver waits for the expiry instead
                logger.warning("rollout driver lease not released: %s", _one_line(exc))
            self.driving = False

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception as exc:  # the thread must outlive anything one tick meets
                logger.error("rollout driver: tick failed: %s", _one_line(exc))

    def tick(self, now: datetime | None = None) -> int:
        """Step each running rollout once; how many device commands were published."""
        now = now or self._clock()
        self.ticks += 1
        if not self._hold_lease(now):
            return 0
        try:
            with Session(self._engine) as session:
                ids = session.exec(
                    select(Rollout.id)
                    .where(col(Rollout.state).in_(ACTIVE_STATES))
                    .order_by(col(Rollout.id))
                ).all()
        except Exception as exc:  # the driver must survive a database outage
            logger.error("rollout driver: cannot list running rollouts: %s", _one_line(exc))
            return 0
        # a rollout that stopped (completed, aborted) is forgotten; a paused one is only
        # recorded (step.step), which clears its count once it succeeds
        self._failures = {k: v for k, v in self._failures.items() if k in ids}
        sent = 0
        for rollout_id in ids:
            if self._stop.is_set():
                break  # shutting down: the next process carries on from the database
            if rollout_id is None:
                continue
            try:
                with Session(self._engine) as session:
                    changed = step(session, rollout_id, now=now, skip_locked=True)
                    self._failures.pop(rollout_id, None)
                    if changed:
                        sent += publish_commands(
                            session, self._signer, self._publisher, device_ids=changed
                        )
            except Exception as exc:  # one bad rollout must not stop the others
                logger.error("rollout %s: driver step failed: %s", rollout_id, _one_line(exc))
                logger.debug("rollout driver step failure", exc_info=True)
                self._count_failure(rollout_id, exc, now)
        return sent

    def _hold_lease(self, now: datetime) -> bool:
        """Renew or take the driver's lease; whether this replica drives now."""
        try:
            held = leases.hold(self._engine, LEASE, self.replica, ttl=self.lease_ttl, now=now)
        except Exception as exc:  # the database is away: nobody can drive anyway
            logger.error("rollout driver: cannot renew its lease: %s", _one_line(exc))
            held = False
        if held != self.driving:
            try:  # only for the log line: the database may be the reason it changed
                lease = leases.current(self._engine, LEASE)
            except Exception:
                lease = None
            if held:
                logger.info(
                    "this replica (%s) drives rollouts now (lease epoch %s)",
                    self.replica,
                    lease.epoch if lease else "?",
                )
            else:
                logger.info(
                    "rollouts are driven by %s now, not by this replica",
                    lease.holder if lease else "nobody (or the database is away)",
                )
        self.driving = held
        return held

    def _count_failure(self, rollout_id: int, exc: Exception, now: datetime) -> None:
        """After :data:`MAX_STEP_FAILURES` failed steps in a row (not a passing glitch),
        pause the rollout with the error as its reason, so the operator sees it."""
        failures = self._failures.get(rollout_id, 0) + 1
        self._failures[rollout_id] = failures
        if failures < MAX_STEP_FAILURES:
            return
        reason = f"the driver failed to step it {failures} times in a row: {_one_line(exc)}"
        try:
            with Session(self._engine) as session:
                pause(session, rollout_id=rollout_id, reason=reason[:500], now=now)
        except ControlPlaneError as gone:  # no longer running (or gone): nothing to pause
            logger.info("rollout %s: not paused: %s", rollout_id, gone)
        except Exception as again:  # e.g. the database is down: try again next tick
            logger.error("rollout %s: cannot pause it: %s", rollout_id, _one_line(again))
            return
        self._failures.pop(rollout_id, None)
