"""Heartbeat history (``controlplane.history``): every applied heartbeat adds a sample
per model version, in one INSERT per batch; older samples are folded into buckets (last
counts, mean p50, highest p95) and dropped past the retention; the maintenance loop does
it on the replica holding its lease. Real sealed reports, real SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane import history
from controlplane.audit import AuditEntry
from controlplane.history import HeartbeatSample, Retention
from controlplane.maintenance import Maintenance
from controlplane.timeline import DeviceEvent
from protocol import TopicKind, device_topic
from tests.support.controlplane import state_report
from tests.support.identity import SealingIngester

BEAT = device_topic("d1", TopicKind.HEARTBEAT)
RETENTION = Retention(raw_s=3600, bucket_s=600, keep_s=86_400)


@pytest.fixture
def engine(engine_on_both: Engine) -> Engine:
    """SQLite, and PostgreSQL: there the batch path takes its fast paths (COPY)."""
    return engine_on_both


def beat(at: datetime, requests: int, p50: float, p95: float) -> bytes:
    model = {"name": "det", "version": "1", "backend": "ort", "requests": requests}
    return json.dumps(
        {
            "device_id": "d1",
            "at": at.isoformat(),
            "cpu_percent": 5.0,
            "rss_bytes": 1,
            "mem_total_bytes": 2,
            "mem_available_bytes": 1,
            "mem_percent": 50.0,
            "load_avg": [0, 0, 0],
            "uptime_s": 1.0,
            "models": [model | {"errors": 1, "p50_ms": p50, "p95_ms": p95}],
        }
    ).encode()


def samples(engine: Engine) -> list[HeartbeatSample]:
    with Session(engine) as session:
        return history.history(session, "d1")


def test_each_heartbeat_adds_a_sample_per_model(ingester: SealingIngester, engine: Engine) -> None:
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1"))
    now = datetime.now(UTC)
    ingester.handle(BEAT, beat(now - timedelta(seconds=2), 10, 1.0, 2.0))
    ingester.handle_batch(
        [(BEAT, beat(now - timedelta(seconds=1), 20, 1.5, 3.0)), (BEAT, beat(now, 30, 2.0, 4.0))]
    )
    found = samples(engine)
    assert [(s.requests, s.p95_ms, s.resolution_s) for s in found] == [
        (10, 2.0, 0),
        (20, 3.0, 0),
        (30, 4.0, 0),
    ]


def test_old_samples_are_folded_then_dropped(ingester: SealingIngester, engine: Engine) -> None:
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1"))
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    old = now - timedelta(hours=2)  # 10:00: past the raw retention of an hour
    rows = [
        history.samples_of("d1", history_beat, at)[0]
        for history_beat, at in (
            (_decoded(beat(old, 10, 1.0, 2.0)), old),
            (_decoded(beat(old, 40, 3.0, 9.0)), old + timedelta(minutes=5)),
            (_decoded(beat(old, 50, 2.0, 4.0)), old + timedelta(minutes=12)),  # next bucket
            (_decoded(beat(old, 90, 2.0, 4.0)), now - timedelta(minutes=10)),  # recent: raw
        )
    ]
    with Session(engine) as session:
        history.record(session, rows)
        session.commit()
    assert history.downsample(engine, RETENTION, now=now) == (3, 0)
    found = samples(engine)
    assert [(s.requests, s.p50_ms, s.p95_ms, s.resolution_s) for s in found] == [
        (40, 2.0, 9.0, 600),  # 10:00-10:10: last counts, mean p50, highest p95
        (50, 2.0, 4.0, 600),  # 10:10-10:20
        (90, 2.0, 4.0, 0),
    ]
    assert found[0].at.replace(tzinfo=UTC) == old
    # a day later everything is past the retention
    assert history.downsample(engine, RETENTION, now=now + timedelta(days=1, hours=1)) == (1, 3)
    assert samples(engine) == []


def test_maintenance_runs_on_the_replica_holding_its_lease(engine: Engine) -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    a = Maintenance(engine, RETENTION, replica="a", clock=lambda: now)
    b = Maintenance(engine, RETENTION, replica="b", clock=lambda: now)
    assert a.run_once() == (0, 0) and a.holding
    assert b.run_once() is None and not b.holding


def _decoded(raw: bytes) -> object:
    from protocol import Heartbeat, decode

    return decode(Heartbeat, raw)


@pytest.mark.parametrize("bad", [(30, 60, 100), (60, 60, 30), (60, 0, 100)])
def test_a_retention_that_does_not_fit_is_refused(bad: tuple[int, int, int]) -> None:
    raw, bucket, keep = bad
    with pytest.raises(ValueError, match="history retention needs"):
        Retention(raw_s=raw, bucket_s=bucket, keep_s=keep)


def test_maintenance_drops_timeline_and_audit_entries_past_their_retention(
    engine: Engine,
) -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    with Session(engine) as session:
        for days in (40, 10):  # history keeps 1 day here, the audit trail 30
            at = now - timedelta(days=days)
            session.add(DeviceEvent(device_id="d1", at=at, kind="link", message="online"))
            session.add(
                AuditEntry(at=at, source="api", action="fleet.create", target="fleet f", status=201)
            )
        session.commit()
    keeper = Maintenance(
        engine, RETENTION, replica="a", clock=lambda: now, audit_keep_s=30 * 86_400
    )
    assert keeper.run_once() == (0, 0)
    with Session(engine) as session:
        assert session.exec(select(DeviceEvent)).all() == []
        kept = session.exec(select(AuditEntry)).all()
    assert [e.at.replace(tzinfo=UTC) for e in kept] == [now - timedelta(days=10)]
