"""Shared fixtures: a private Mosquitto, database URLs (SQLite and PostgreSQL), models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Broker, run_mosquitto
from tests.support.trust import TrustKit, make_trust_kit

POSTGRES_ADMIN_URL = os.environ.get(
    "EDGEFLEET_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of the test's own on a free loopback port."""
    with run_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


def _postgres_database() -> Iterator[str]:
    import sqlalchemy as sa

    name = f"edgefleet_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc.orig}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite file, then a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'edgefleet.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def trust_kit(tmp_path: Path) -> TrustKit:
    """Root, release and control-plane key pairs and a root-signed trust document (v1)."""
    return make_trust_kit(tmp_path / "trust")
