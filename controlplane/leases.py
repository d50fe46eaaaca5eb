"""Leases: one replica at a time does a job (the rollout driver), taken over if it dies.

A lease is a row of ``lease``: its name, the replica holding it, when that expires and an
epoch that grows at every change of holder. A replica that wants the job calls ``hold``
every tick: one compare-and-set ``UPDATE`` renews the lease if it holds it, or takes it if
it expired (and bumps the epoch); the first replica ever inserts the row. Nothing else
is shared, so any database that the replicas share will do (SQLite or PostgreSQL).

* **Hand-over**: a replica that stops cleanly releases its lease (``release``: expired
  now), so another takes it at its next tick; one that dies holds it until it expires,
  at most ``ttl`` later. A replica that was stalled past its expiry finds the lease
  taken at its next tick and stops.
* **Clocks**: expiry is written and compared in each replica's own clock (UTC), so the
  replicas' clocks must agree to well within ``ttl`` (NTP does). The rollout driver
  adds its own fence: on PostgreSQL each rollout row is locked (``SKIP LOCKED``) while
  it is stepped, so even two drivers at once never step one rollout twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Engine, case, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col

logger = logging.getLogger(__name__)


class Lease(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=256)
    epoch: int = 1
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))


@dataclass(frozen=True)
class LeaseView:
    name: str
    holder: str
    epoch: int
    expires_at: datetime


def hold(engine: Engine, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Renew or take lease ``name`` for ``holder`` until ``now + ttl``; whether it holds it."""
    expires = now + ttl
    with Session(engine) as session:
        taken = session.exec(
            update(Lease)
            .where(col(Lease.name) == name)
            .where((col(Lease.holder) == holder) | (col(Lease.expires_at) <= now))
            .values(
                holder=holder,
                expires_at=expires,
                epoch=case(
                    (col(Lease.holder) == holder, col(Lease.epoch)), else_=col(Lease.epoch) + 1
                ),
            )
        )
        if taken.rowcount == 1:
            session.commit()
            return True
        if session.get(Lease, name) is not None:
            return False  # held by another replica
        session.add(Lease(name=name, holder=holder, expires_at=expires))
        try:
            session.commit()
        except IntegrityError:  # another replica inserted it first
            return False
        return True


def release(engine: Engine, name: str, holder: str, *, now: datetime) -> None:
    """Give lease ``name`` up now, if ``holder`` holds it (a clean stop)."""
    with Session(engine) as session:
        session.exec(
            update(Lease)
            .where(col(Lease.name) == name)
            .where(col(Lease.holder) == holder)
            .values(expires_at=now)
        )
        session.commit()


def current(engine: Engine, name: str) -> LeaseView | None:
    """Who holds lease ``name`` (or last held it), and until when."""
    with Session(engine) as session:
        lease = session.get(Lease, name)
        if lease is None:
            return None
        expires = lease.expires_at
        if expires.tzinfo is None:  # SQLite hands back naive UTC timestamps
            expires = expires.replace(tzinfo=UTC)
        return LeaseView(lease.name, lease.holder, lease.epoch, expires)
