"""The rollout driver: a daemon thread that steps every running rollout each tick.

Each rollout is stepped in its own session and short transaction
(:func:`controlplane.rollouts.step.step`); on PostgreSQL its row is locked with
``SKIP LOCKED``, so two replicas never step one rollout at once. The commands of the
devices a step assigned are published after its commit. Everything a rollout needs is
in the database, so a restarted control plane carries on mid-batch. An exception in a
step is logged in one line and the loop goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controlplane.commands import CommandSigner, publish_commands
from controlplane.models import Rollout, RolloutState, utcnow
from controlplane.publisher import DesiredStatePublisher
from controlplane.rollouts.step import step

logger = logging.getLogger(__name__)


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
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._publisher = publisher
        self.tick_s = tick_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

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

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.tick()

    def tick(self, now: datetime | None = None) -> int:
        """Step each running rollout once; how many device commands were published."""
        now = now or self._clock()
        self.ticks += 1
        try:
            with Session(self._engine) as session:
                ids = session.exec(
                    select(Rollout.id)
                    .where(Rollout.state == RolloutState.RUNNING.value)
                    .order_by(col(Rollout.id))
                ).all()
        except Exception as exc:  # the driver must survive a database outage
            logger.error("rollout driver: cannot list running rollouts: %s", _one_line(exc))
            return 0
        sent = 0
        for rollout_id in ids:
            if self._stop.is_set():
                break  # shutting down: the next process carries on from the database
            if rollout_id is None:
                continue
            try:
                with Session(self._engine) as session:
                    changed = step(session, rollout_id, now=now, skip_locked=True)
                    if changed:
                        sent += publish_commands(
                            session, self._signer, self._publisher, device_ids=changed
                        )
            except Exception as exc:  # one bad rollout must not stop the others
                logger.error("rollout %s: driver step failed: %s", rollout_id, _one_line(exc))
                logger.debug("rollout driver step failure", exc_info=True)
        return sent
