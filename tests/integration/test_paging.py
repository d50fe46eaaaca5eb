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

from controlplane import history
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
