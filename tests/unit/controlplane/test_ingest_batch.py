"""Reports applied in batches (``controlplane.ingest_batch``): one transaction for many,
the newest figures of each device kept, events and state reports in the same batch (a
command it calls for published after it committed), each report counted and acknowledged
once, a bad report costing only itself, a batch the database refuses applied one by one,
and availability keeping its place among its device's reports.

Real sealed reports of enrolled devices, the real ingester, a real SQLite database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from controlplane import crud, ingest
from controlplane.crud.heartbeats import figures
from controlplane.ingest_batch import Incoming
from controlplane.models import DeploymentTarget, Device, TargetStatus
from controlplane.publisher import MemoryPublisher
from protocol import (
    Availability,
    DeploymentEvent,
    EventKind,
    Heartbeat,
    TopicKind,
    decode,
    device_topic,
    encode,
)
from tests.support.controlplane import DET_V1_DIGEST, register_version, state_report
from tests.support.identity import SealingIngester

DEVICES = ("d1", "d2", "d3")


@pytest.fixture
def engine(engine_on_both: Engine) -> Engine:
    """SQLite, and PostgreSQL: there the batch path takes its fast paths (COPY)."""
    return engine_on_both


def beat(device_id: str, requests: int, at: datetime) -> bytes:
    return json.dumps(
        {
            "device_id": device_id,
            "at": at.isoformat(),
            "cpu_percent": 5.0,
            "rss_bytes": 1 << 20,
            "mem_total_bytes": 1 << 30,
            "mem_available_bytes": 1 << 29,
            "mem_percent": 50.0,
            "load_avg": [0.1, 0.1, 0.1],
            "uptime_s": 60.0,
            "models": [
                {"name": "det", "version": "1", "backend": "b", "requests": requests, "errors": 0}
            ],
        }
    ).encode()


def topic(device_id: str) -> str:
    return device_topic(device_id, TopicKind.HEARTBEAT)


def rows(engine: Engine) -> dict[str, Device]:
    with Session(engine) as session:
        return {d.id: d for d in session.exec(select(Device)).all()}


def requests_of(device: Device) -> Any:
    return (device.last_heartbeat or {})["models"][0]["requests"]


@pytest.fixture
def registered(ingester: SealingIngester) -> SealingIngester:
    for device_id in DEVICES:
        ingester.handle(device_topic(device_id, TopicKind.STATE), state_report(device_id))
    return ingester


def test_a_batch_keeps_each_devices_newest_figures_in_one_transaction(
    registered: SealingIngester, engine: Engine
) -> None:
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    start = datetime.now(UTC) - timedelta(seconds=30)
    items = [
        (topic(d), beat(d, n, start + timedelta(seconds=n))) for n in range(5) for d in DEVICES
    ]
    registered.handle_batch(items)
    assert len(commits) == 1
    stats = registered.stats
    assert (stats.received, stats.applied) == (18, 18)  # 3 state reports + 15 heartbeats
    assert {d: requests_of(row) for d, row in rows(engine).items()} == dict.fromkeys(DEVICES, 4)
    assert len(registered.ingester.acks) == 15  # each heartbeat acknowledged once stored


def test_a_replayed_or_malformed_heartbeat_costs_only_itself(
    registered: SealingIngester, engine: Engine
) -> None:
    now = datetime.now(UTC)
    good = registered.seal(topic("d1"), beat("d1", 7, now))
    malformed = registered.seal(topic("d2"), b'{"device_id": "d2"}')
    other = registered.seal(topic("d3"), beat("d1", 9, now))  # names another device
    last = registered.seal(topic("d2"), beat("d2", 11, now))
    registered.ingester.handle_batch(
        [Incoming(topic("d1"), good), Incoming(topic("d1"), good), Incoming(topic("d2"), malformed),
         Incoming(topic("d3"), other), Incoming(topic("d2"), last)]
    )  # fmt: skip
    stats = registered.stats
    assert (stats.applied, stats.replayed, stats.malformed, stats.rejected) == (3 + 2, 1, 1, 1)
    found = rows(engine)
    assert (requests_of(found["d1"]), requests_of(found["d2"])) == (7, 11)
    assert found["d3"].last_heartbeat is None
    pending = registered.ingester.acks.take()
    assert len(pending["d1"].stored) == 1  # the replay is acknowledged as stored, once
    assert len(pending["d2"].lost) == 1 and len(pending["d2"].stored) == 1
    assert len(pending["d3"].lost) == 1
    assert found["d3"].report_windows["heartbeat"][0] > 0  # its seq is spent all the same


def test_a_heartbeat_the_database_refuses_costs_only_itself(
    registered: SealingIngester, engine: Engine
) -> None:
    """PostgreSQL refuses a NUL in text: the fast path's COPY fails, the batch is applied
    one by one, and only that heartbeat is lost (SQLite stores it)."""
    now = datetime.now(UTC)
    bad = beat("d2", 5, now).replace(b'"backend": "b"', b'"backend": "b\\u0000"')
    assert bad != beat("d2", 5, now)
    registered.handle_batch([(topic("d1"), beat("d1", 5, now)), (topic("d2"), bad),
                             (topic("d3"), beat("d3", 5, now))])  # fmt: skip
    found = rows(engine)
    assert requests_of(found["d1"]) == requests_of(found["d3"]) == 5
    postgres = engine.dialect.name == "postgresql"
    assert registered.stats.errors == (1 if postgres else 0)
    assert (found["d2"].last_heartbeat is None) == postgres


def test_an_older_heartbeat_in_a_batch_only_marks_its_device_seen(
    registered: SealingIngester, engine: Engine
) -> None:
    now = datetime.now(UTC)
    registered.handle_batch([(topic(d), beat(d, 8, now)) for d in DEVICES])
    seen = {d: row.last_seen_at for d, row in rows(engine).items()}
    older = now - timedelta(seconds=20)
    registered.handle_batch([(topic(d), beat(d, 3, older)) for d in DEVICES])
    after = rows(engine)
    assert {d: requests_of(row) for d, row in after.items()} == dict.fromkeys(DEVICES, 8)
    kept = figures(decode(Heartbeat, beat("d1", 8, now)))  # as one heartbeat alone keeps it
    assert after["d1"].last_heartbeat == kept
    assert all(after[d].last_seen_at > seen[d] for d in DEVICES)  # type: ignore[operator]
    assert registered.stats.applied == 3 + 6


def test_a_batch_the_database_refuses_is_applied_one_by_one(
    registered: SealingIngester,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(*args: object) -> None:
        raise OperationalError("SELECT ... FOR UPDATE", {}, Exception("lock timeout"))

    # heartbeats only: the batch takes the fast path (crud.heartbeats)
    monkeypatch.setattr(ingest.HeartbeatRows, "lock", refuse)
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="controlplane.ingest"):
        registered.handle_batch([(topic(d), beat(d, 5, now)) for d in DEVICES])
    assert "a batch of 3 reports failed in the database" in caplog.text
    assert "applying them one by one" in caplog.text
    stats = registered.stats
    assert (stats.received, stats.applied, stats.errors) == (6, 6, 0)  # counted once each
    assert {d: requests_of(row) for d, row in rows(engine).items()} == dict.fromkeys(DEVICES, 5)
    assert len(registered.ingester.acks) == 3


def _event(device_id: str, deployment_id: int, generation: int, kind: EventKind) -> bytes:
    return encode(
        DeploymentEvent(
            device_id=device_id,
            deployment_id=deployment_id,
            generation=generation,
            model_name="det",
            model_version="1.0.0",
            kind=kind,
        )
    )


def test_events_and_state_reports_go_in_the_batch_in_each_devices_order(
    registered: SealingIngester, engine: Engine, publisher: MemoryPublisher
) -> None:
    register_version(engine, digest=DET_V1_DIGEST)
    with Session(engine) as session:
        deployment, _, targets = crud.create_deployment(
            session, model="det", version="1.0.0", fleet="f"
        )
        assert deployment.id is not None
        generations = {t.device_id: t.generation for t in targets}
    items: list[tuple[str, bytes]] = []
    for kind in (EventKind.RECEIVED, EventKind.DOWNLOADED, EventKind.ACTIVATED):
        for d in DEVICES:
            items.append(
                (device_topic(d, TopicKind.EVENTS), _event(d, deployment.id, generations[d], kind))
            )
    # a device enrolled just now: its first state report assigns it the fleet's deployment,
    # and its command is signed and published once the batch committed
    items.append((device_topic("d4", TopicKind.STATE), state_report("d4")))
    sealed = [Incoming(t, registered.seal(t, p)) for t, p in items]  # d4 enrolls here
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    registered.ingester.handle_batch(sealed)
    assert len(commits) == 2  # the batch, then the command it called for
    stats = registered.stats
    assert (stats.received, stats.applied, stats.errors) == (3 + 10, 3 + 10, 0)
    with Session(engine) as session:
        status = {t.device_id: t.status for t in session.exec(select(DeploymentTarget)).all()}
    assert status == dict.fromkeys(DEVICES, TargetStatus.ACTIVATED) | {"d4": TargetStatus.PENDING}
    assert [c.device_id for c in publisher.published][-1] == "d4"
    assert len(registered.ingester.acks) == 9  # each event acknowledged once (states: retained)


def test_availability_after_a_report_of_its_device_waits_for_the_batch(
    registered: SealingIngester, engine: Engine
) -> None:
    now = datetime.now(UTC)
    offline = device_topic("d1", TopicKind.AVAILABILITY)
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    registered.handle_batch(
        [
            (topic("d1"), beat("d1", 3, now)),
            (topic("d2"), beat("d2", 3, now)),
            (offline, encode(Availability(device_id="d1", online=False))),
            (topic("d3"), beat("d3", 3, now)),
        ]
    )
    # the two heartbeats before it, then it, then the rest: three transactions, in order
    assert len(commits) == 3
    found = rows(engine)
    assert found["d1"].online is False and found["d3"].online is True
    assert {d: requests_of(row) for d, row in found.items()} == dict.fromkeys(DEVICES, 3)
