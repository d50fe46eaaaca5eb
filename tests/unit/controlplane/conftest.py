"""Fixtures of the control-plane unit tests that ingest reports: a real SQLite database,
the real ingester (fed sealed reports of enrolled devices) and command signer, MQTT
replaced by the in-memory publisher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controlplane.db import init_db, make_engine
from controlplane.ingest import Ingester
from controlplane.publisher import MemoryPublisher
from tests.support.controlplane import signer
from tests.support.identity import SealingIngester, sealing
from tests.support.trust import TrustKit


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite control-plane database."""
    engine = make_engine(f"sqlite:///{tmp_path / 'edgefleet.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine_on_both(database_url: str) -> Iterator[Engine]:
    """A fresh control-plane database: SQLite, then PostgreSQL (for the paths that take
    PostgreSQL's own statements, such as ``COPY``). A module uses it as its ``engine``."""
    engine = make_engine(database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def ingester(engine: Engine, publisher: MemoryPublisher, trust_kit: TrustKit) -> SealingIngester:
    """The real ingester on ``engine``, fed reports sealed by enrolled devices (each
    enrolled on its first report, in the fleet it names); what it publishes lands in
    ``publisher``."""
    cmd = signer(engine, trust_kit)
    return sealing(Ingester(engine, publisher, cmd), engine, cmd, trust_kit)
