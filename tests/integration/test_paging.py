"""A fleet too large to read whole on each request (issue 15.3): devices come a page at a
time (keyset paging, the next page in a ``Link`` header), the dashboard's fleet counts come
from one ``GROUP BY``, and on PostgreSQL the queries behind the lists, the heartbeat
history use their indexes (``EXPLAIN`` on 20,000 devices)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text
from sqlmodel import Session, col, select

from controlplane import bulk, history
from controlplane.crud import heartbeats
from controlplane.db import init_db, make_engine
from controlplane.history import HeartbeatSample
from controlplane.models import Device, Fleet
from controlplane.paging import fleet_summary
from tests.support.postgres import postgres_database
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration


def _pages(plane: Plane, **params: Any) -> list[list[str]]:
    """Every page of ``GET /devices`` with ``params``, following the Link headers."""
    pages: list[list[str]] = []
    url: str | None = "/api/v1/devices"
    query: dict[str, Any] | None = params
    while url is not None:
        response = plane.http.get(url, params=query)
        assert response.status_code == 200, response.text
        pages.append([d["id"] for d in response.json()])
        link = response.links.get("next")
        url, query = (link["url"], None) if link else (None, None)
        if link:
            assert response.headers["X-Next-After"] == pages[-1][-1]
    return pages


def flat(pages: list[list[str]]) -> list[str]:
    return [device_id for page in pages for device_id in page]


def test_devices_come_a_page_at_a_time(plane: Plane) -> None:
    ids = [f"d{i:02d}" for i in range(23)]
    for i, device_id in enumerate(ids):
        plane.report(device_id, fleet="f" if i % 4 else "g")
    for device_id in ids[::3]:
        response = plane.http.patch(
            f"/api/v1/devices/{device_id}/labels", json={"set": {"site": "a"}}
        )
        assert response.status_code == 200, response.text
    pages = _pages(plane, limit=10)
    assert [len(p) for p in pages] == [10, 10, 3]
    assert flat(pages) == ids  # in id order, none twice, none left out
    assert _pages(plane) == [ids]  # the default page holds them all
    in_f = [d for i, d in enumerate(ids) if i % 4]
    assert flat(_pages(plane, fleet="f", limit=4)) == in_f
    labelled = _pages(plane, selector="site=a", limit=3)
    assert flat(labelled) == ids[::3] and all(len(p) <= 3 for p in labelled)
    assert plane.http.get("/api/v1/devices", params={"limit": 0}).status_code == 422
    with Session(plane.engine) as session:
        counts = {c.fleet: (c.devices, c.failed) for c in fleet_summary(session)}
    assert counts == {"f": (len(in_f), 0), "g": (len(ids) - len(in_f), 0)}


# -- query plans on PostgreSQL -------------------------------------------------------

DEVICES = 20_000


@pytest.fixture(scope="module")
def big() -> Iterator[Engine]:
    """A PostgreSQL database with 20,000 devices in 20 fleets and 100,000 heartbeat
    samples; statistics up to date."""
    with postgres_database() as url:
        engine = make_engine(url)
        init_db(engine)
        now = datetime.now(UTC)
        with Session(engine) as session:
            session.execute(insert(Fleet), [{"name": f"fleet-{f:02d}"} for f in range(20)])
            session.execute(
                insert(Device),
                [{"id": f"dev-{i:06d}", "fleet": f"fleet-{i % 20:02d}"} for i in range(DEVICES)],
            )
            session.execute(
                insert(HeartbeatSample),
                [
                    {
                        "device_id": f"dev-{i % DEVICES:06d}",
                        "model": "det",
                        "version": "1",
                        "at": now - timedelta(seconds=i),
                        "requests": i,
                    }
                    for i in range(100_000)
                ],
            )
            session.commit()
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        yield engine
        engine.dispose()


def _plan(engine: Engine, statement: Any) -> str:
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        rows = conn.execute(text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one()
    return json.dumps(rows)


@pytest.mark.postgres
def test_the_big_queries_use_their_indexes_on_postgresql(big: Engine) -> None:
    page = select(Device).where(col(Device.id) > "dev-010000").order_by(col(Device.id)).limit(500)
    by_fleet = (
        select(Device)
        .where(col(Device.fleet) == "fleet-07")
        .where(col(Device.id) > "dev-000100")
        .order_by(col(Device.id))
        .limit(500)
    )
    samples = (
        select(HeartbeatSample)
        .where(col(HeartbeatSample.device_id) == "dev-000042")
        .where(col(HeartbeatSample.model) == "det")
        .order_by(col(HeartbeatSample.at))
        .limit(1000)
    )
    expired = select(HeartbeatSample.id).where(
        col(HeartbeatSample.at) < datetime.now(UTC) - timedelta(days=30)
    )
    for name, statement in [
        ("devices page", page),
        ("devices of a fleet", by_fleet),
        ("a device's history", samples),
        ("history past retention", expired),
    ]:
        plan = _plan(big, statement)
        assert '"Seq Scan"' not in plan, f"{name}: {plan}"
        assert "Index" in plan, f"{name}: {plan}"
    with Session(big) as session:
        assert history.count(session) == 100_000


def _scans(plan: Any) -> list[tuple[str, str]]:
    """(node type, relation) of every node of an ``EXPLAIN (FORMAT JSON)`` plan."""
    found: list[tuple[str, str]] = []
    nodes = [plan[0]["Plan"]] if isinstance(plan, list) else [plan]
    while nodes:
        node = nodes.pop()
        found.append((node["Node Type"], node.get("Relation Name", "")))
        nodes.extend(node.get("Plans", []))
    return found


@pytest.mark.postgres
def test_the_heartbeat_batch_update_finds_its_devices_by_key(big: Engine) -> None:
    """The fast path's UPDATE ... FROM its staged rows (``crud.heartbeats``) in a fleet of
    100,000 (80,000 more devices, rolled back after): each of the 500 devices found
    through the primary key, the device table not read through. (At 20,000 devices
    PostgreSQL rightly prefers reading the table once: it is cheaper there.)"""
    with Session(big) as session:
        connection = session.connection()
        connection.exec_driver_sql(
            "INSERT INTO device (id, fleet, online, status, generation, reported_generation,"
            " hardware, created_at, model_pins, selections, labels, runtimes, report_windows,"
            " models) SELECT 'more-' || lpad(g::text, 6, '0'), 'fleet-00', true, 'idle', 0, 0,"
            " '{}', now(), '{}', '{}', '{}', '[]', '{}', '[]' FROM generate_series(1, 80000) g"
        )
        connection.exec_driver_sql("ANALYZE device")
        table = bulk.staged(connection, heartbeats.STAGED, heartbeats.STAGED_COLUMNS)
        now = datetime.now(UTC)
        rows = [(f"dev-{i * 37:06d}", "{}", now, "{}", now) for i in range(500)]
        bulk.copy_rows(connection, table, ("id", "windows", "seen", "figures", "at"), rows)
        plan = connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + heartbeats.UPDATE_FROM_STAGED
        ).scalar_one()
        session.rollback()
    with big.connect() as conn:
        conn.execute(text("ANALYZE device"))  # back to the fixture's statistics
        conn.commit()
    scans = _scans(plan)
    assert ("Index Scan", "device") in scans, scans
    assert ("Seq Scan", "device") not in scans, scans
