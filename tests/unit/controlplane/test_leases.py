"""One replica at a time drives rollouts (``controlplane.leases``): the lease is renewed by
its holder, taken over only once it expired (a dead replica) or was released (a clean
stop), and every change of holder bumps its epoch. Real SQLite database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from controlplane import leases
from controlplane.publisher import MemoryPublisher
from controlplane.rollouts.driver import LEASE, RolloutDriver
from tests.support.controlplane import signer
from tests.support.trust import TrustKit

TTL = timedelta(seconds=10)
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_the_holder_renews_and_others_wait_for_the_expiry(engine: Engine) -> None:
    assert leases.hold(engine, "job", "a", ttl=TTL, now=T0)
    assert not leases.hold(engine, "job", "b", ttl=TTL, now=T0 + timedelta(seconds=5))
    assert leases.hold(engine, "job", "a", ttl=TTL, now=T0 + timedelta(seconds=9))  # renewed
    assert not leases.hold(engine, "job", "b", ttl=TTL, now=T0 + timedelta(seconds=15))
    view = leases.current(engine, "job")
    assert view is not None and (view.holder, view.epoch) == ("a", 1)
    # a dies: b takes over once a's last renewal expired, and the epoch moves on
    assert leases.hold(engine, "job", "b", ttl=TTL, now=T0 + timedelta(seconds=19))
    assert not leases.hold(engine, "job", "a", ttl=TTL, now=T0 + timedelta(seconds=20))
    view = leases.current(engine, "job")
    assert view is not None and (view.holder, view.epoch) == ("b", 2)
    assert view.expires_at == T0 + timedelta(seconds=19) + TTL  # aware, as written


def test_a_released_lease_is_taken_at_once(engine: Engine) -> None:
    assert leases.hold(engine, "job", "a", ttl=TTL, now=T0)
    leases.release(engine, "job", "b", now=T0)  # not b's to release
    assert not leases.hold(engine, "job", "b", ttl=TTL, now=T0 + timedelta(seconds=1))
    leases.release(engine, "job", "a", now=T0 + timedelta(seconds=1))
    assert leases.hold(engine, "job", "b", ttl=TTL, now=T0 + timedelta(seconds=1))


def test_two_drivers_take_turns_never_both(
    engine: Engine, trust_kit: TrustKit, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [T0]
    cmd = signer(engine, trust_kit)

    def driver(name: str) -> RolloutDriver:
        return RolloutDriver(
            engine, cmd, MemoryPublisher(), tick_s=1.0, clock=lambda: clock[0], replica=name
        )

    a, b = driver("replica-a"), driver("replica-b")
    caplog.set_level(logging.INFO, logger="controlplane.rollouts.driver")
    for _ in range(3):
        a.tick()
        b.tick()
        assert (a.driving, b.driving) == (True, False)
        clock[0] += timedelta(seconds=1)
    # a dies (no release; its last renewal was 1 s ago): b waits out the lease, then drives
    clock[0] += a.lease_ttl - timedelta(seconds=2)
    b.tick()
    assert not b.driving
    clock[0] += timedelta(seconds=2)
    b.tick()
    assert b.driving
    assert "this replica (replica-b) drives rollouts now (lease epoch 2)" in caplog.text
    # a comes back: it stays out while b renews; b's clean stop hands over at once
    a.tick()
    assert not a.driving
    assert "rollouts are driven by replica-b now, not by this replica" in caplog.text
    b.start()
    b.stop()
    a.tick()
    assert a.driving and leases.current(engine, LEASE).holder == "replica-a"  # type: ignore[union-attr]


def test_the_driver_survives_losing_its_lease_to_a_database_outage(
    engine: Engine, trust_kit: TrustKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: the database dropped under a running control plane; the lease renewal
    failed, and reading the lease for the log line raised in the driver's thread, which
    died (no replica drove rollouts again until a restart)."""
    driver = RolloutDriver(
        engine, signer(engine, trust_kit), MemoryPublisher(), tick_s=0.01, replica="replica-a"
    )
    driver.tick()
    assert driver.driving

    def away(*_args: object, **_kwargs: object) -> None:
        raise OSError("the database is away")

    monkeypatch.setattr(leases, "hold", away)
    monkeypatch.setattr(leases, "current", away)
    driver.tick()  # the lease is lost; logging it must not raise
    assert not driver.driving
    monkeypatch.undo()
    driver.tick()  # the database is back: it drives again
    assert driver.driving
