"""Device filters that hold at 100,000 devices (issue 17.5), on PostgreSQL: each
filter's page query (``controlplane.paging.page_query``, what the dashboard and
``GET /devices`` run) reads the device table through an index, never a sequential scan,
and the first and a later page hold the right devices. The time of each page is printed,
not asserted (the machine is shared)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from controlplane.db import init_db, make_engine
from controlplane.paging import DeviceFilter, devices_page, page_query
from tests.support.postgres import postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

DEVICES = 100_000
PROFILES = ("xeon", "arm", "jetson", "rpi")
PAGE = 50


@dataclass(frozen=True)
class Row:
    """What the bulk insert gives device ``n`` (the same formulas as its SQL)."""

    n: int

    @property
    def id(self) -> str:
        return f"dev-{self.n:06d}"

    @property
    def fleet(self) -> str:
        return f"fleet-{self.n % 20:02d}"

    @property
    def status(self) -> str:
        return "failed" if self.n % 97 == 0 else "active"

    @property
    def version(self) -> str:
        return f"1.{self.n % 7}.0"

    @property
    def online(self) -> bool:
        return self.n % 3 != 0

    @property
    def profile(self) -> str:
        return PROFILES[self.n % 4]

    @property
    def labels(self) -> dict[str, str]:
        found = {"site": f"site-{self.n % 50}"}
        if self.n % 1000 == 0:
            found["tier"] = "gold"
        return found


_INSERT = """
INSERT INTO device (id, fleet, online, status, active_model, active_version, profile,
  generation, reported_generation, hardware, created_at, model_pins, selections, labels,
  runtimes, report_windows, models)
SELECT 'dev-' || lpad(g::text, 6, '0'), 'fleet-' || lpad((g % 20)::text, 2, '0'),
  g % 3 <> 0, CASE WHEN g % 97 = 0 THEN 'failed' ELSE 'active' END, 'det',
  '1.' || (g % 7) || '.0', (ARRAY['xeon', 'arm', 'jetson', 'rpi'])[g % 4 + 1], 0, 0,
  '{}', now(), '{}', '{}',
  CASE WHEN g % 1000 = 0
    THEN json_build_object('site', 'site-' || (g % 50), 'tier', 'gold')
    ELSE json_build_object('site', 'site-' || (g % 50)) END,
  '[]', '{}', '[]'
FROM generate_series(0, :count - 1) g
"""


@pytest.fixture(scope="module")
def fleet_of_100k() -> Iterator[Engine]:
    """A PostgreSQL database at the newest migration with 100,000 devices in 20 fleets
    (one bulk ``INSERT ... SELECT``), statistics up to date."""
    with postgres_database() as url:
        engine = make_engine(url)
        init_db(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO fleet (name, created_at, model_pins) VALUES "
                    + ", ".join(f"('fleet-{f:02d}', now(), '{{}}')" for f in range(20))
                )
            )
            conn.execute(text(_INSERT), {"count": DEVICES})
            conn.execute(text("ANALYZE device"))
        print(f"\n{DEVICES} devices inserted in {time.perf_counter() - started:.1f} s")
        yield engine
        engine.dispose()


#: name -> (the filter, which rows it keeps); a search in the id is timed apart
#: (:func:`test_a_search_in_the_id_reads_the_table_once`)
FILTERS: dict[str, tuple[DeviceFilter, Callable[[Row], bool]]] = {
    "none": (DeviceFilter(), lambda r: True),
    "fleet": (DeviceFilter(fleet="fleet-07"), lambda r: r.fleet == "fleet-07"),
    "status": (DeviceFilter(status="failed"), lambda r: r.status == "failed"),
    "version": (DeviceFilter(version="1.3.0"), lambda r: r.version == "1.3.0"),
    "online": (DeviceFilter(online=False), lambda r: not r.online),
    "profile": (DeviceFilter(profile="jetson"), lambda r: r.profile == "jetson"),
    "label": (DeviceFilter(selector={"site": "site-7"}), lambda r: r.labels["site"] == "site-7"),
    "rare label": (DeviceFilter(selector={"tier": "gold"}), lambda r: "tier" in r.labels),
    "fleet and status": (
        DeviceFilter(fleet="fleet-03", status="failed"),
        lambda r: r.fleet == "fleet-03" and r.status == "failed",
    ),
    "everything": (
        DeviceFilter(
            fleet="fleet-02",
            status="active",
            version="1.2.0",
            online=True,
            profile="jetson",
            selector={"site": "site-22"},
        ),
        lambda r: (
            (r.fleet, r.status, r.version, r.online, r.profile, r.labels["site"])
            == ("fleet-02", "active", "1.2.0", True, "jetson", "site-22")
        ),
    ),
}


def _scans(plan: Any) -> list[tuple[str, str, str]]:
    """(node type, relation, index; "" where none) of every node of an
    ``EXPLAIN (FORMAT JSON)`` plan."""
    found = []
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        found.append((node["Node Type"], node.get("Relation Name", ""), node.get("Index Name", "")))
        nodes.extend(node.get("Plans", []))
    return found


def _plan(engine: Engine, wanted: DeviceFilter, after: str | None) -> list[tuple[str, str, str]]:
    statement = page_query(wanted, after=after, limit=PAGE + 1)
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        return _scans(conn.execute(text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one())


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_reads_a_page_through_an_index(fleet_of_100k: Engine, name: str) -> None:
    wanted, keeps = FILTERS[name]
    expected = [r.id for r in map(Row, range(DEVICES)) if keeps(r)]
    assert expected, name
    # the first page, and the page after the middle of the matches
    middle = expected[len(expected) // 2 - 1] if len(expected) > 1 else None
    for after in (None, middle):
        scans = _plan(fleet_of_100k, wanted, after)
        assert ("Seq Scan", "device", "") not in scans, (name, after, scans)
        indexes = sorted({s[2] for s in scans if s[2]})
        assert indexes, (name, after, scans)
        with Session(fleet_of_100k) as session:
            started = time.perf_counter()
            page = devices_page(session, wanted, after=after, limit=PAGE)
            took_ms = (time.perf_counter() - started) * 1000
        start = 0 if after is None else expected.index(after) + 1
        assert [d.id for d in page.devices] == expected[start : start + PAGE], (name, after)
        more = len(expected) > start + PAGE
        assert page.next_after == (expected[start + PAGE - 1] if more else None)
        print(
            f"\n{name:>16} after {after}: {len(page.devices)} devices in {took_ms:.1f} ms "
            f"({', '.join(indexes)}; {len(expected)} match)"
        )


def test_a_search_in_the_id_reads_the_table_once(fleet_of_100k: Engine) -> None:
    """A part of the id matches anywhere in it, which no B-tree index serves: PostgreSQL
    reads the table once (a sequential scan and a sort of the few matches); printed, as
    what a search costs at 100,000 devices. Narrowed by an indexed filter too, it reads
    through that filter's index."""
    expected = [r.id for r in map(Row, range(DEVICES)) if "-0123" in r.id]
    with Session(fleet_of_100k) as session:
        started = time.perf_counter()
        page = devices_page(session, DeviceFilter(search="-0123"), limit=PAGE)
        took_ms = (time.perf_counter() - started) * 1000
    assert [d.id for d in page.devices] == expected[:PAGE]
    scans = _plan(fleet_of_100k, DeviceFilter(search="-0123"), None)
    print(f"\nsearch '-0123': {len(page.devices)} devices in {took_ms:.1f} ms ({scans})")
    narrowed = DeviceFilter(search="-0123", fleet="fleet-03")
    scans = _plan(fleet_of_100k, narrowed, None)
    assert ("Seq Scan", "device", "") not in scans and any(s[2] for s in scans), scans
