"""Shared fixtures: a private Mosquitto, database URLs (SQLite and PostgreSQL), models;
and the ``serial`` marker on every system and browser test (``make test`` runs the others
on several pytest-xdist workers first, then these alone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Broker, run_mosquitto
from tests.support.postgres import postgres_database
from tests.support.trust import TrustKit, make_trust_kit

#: markers whose tests are also ``serial``: Docker stacks and Chromium must not compete
#: for the CPU with other tests (their waits are sized for a machine of their own)
SERIAL_WITH = ("system", "browser")


@pytest.hookimpl(tryfirst=True)  # before -m "not serial" deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every system and browser test ``serial``."""
    for item in items:
        if any(item.get_closest_marker(name) for name in SERIAL_WITH):
            item.add_marker(pytest.mark.serial)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of the test's own on a free loopback port."""
    with run_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite file, then a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'edgefleet.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def trust_kit(tmp_path: Path) -> TrustKit:
    """Root, release and control-plane key pairs and a root-signed trust document (v1)."""
    return make_trust_kit(tmp_path / "trust")
