"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controlplane.db import init_db, make_engine
from tests.integration.test_agent_deploy import Setup, open_setup
from tests.support.controlplane import DET_V1_DIGEST, DET_V2_DIGEST, register_version
from tests.support.mosquitto import Broker


@pytest.fixture
def setup(tmp_path: Path, mosquitto: Broker) -> Iterator[Setup]:
    """A private broker, a blob server serving a trust chain, keys, and agent factories."""
    with open_setup(tmp_path, mosquitto) as env:
        yield env


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A fresh control-plane database (SQLite, then PostgreSQL) with det 1.0.0 and 2.0.0."""
    engine = make_engine(database_url)
    init_db(engine)
    register_version(engine, "det", "1.0.0", digest=DET_V1_DIGEST)
    register_version(engine, "det", "2.0.0", digest=DET_V2_DIGEST)
    yield engine
    engine.dispose()
