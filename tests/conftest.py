"""Shared fixtures: a private Mosquitto, database URLs (SQLite and PostgreSQL), models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Broker, run_mosquitto
from tests.support.postgres import postgres_database
from tests.support.trust import TrustKit, make_trust_kit


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
