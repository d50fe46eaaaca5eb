"""Fixtures shared by the integration tests: the agent harness (``setup``), a seeded
control-plane database (``engine``), the control plane served with its MQTT bridge
(``cp``) and the in-process control plane of the rollout tests (``plane``).

A module may define a fixture of the same name for its own needs (``cp`` in
``test_edgectl_tokens.py`` and ``test_controlplane_variants.py`` is a control-plane
process); pytest then uses the module's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controlplane.app import create_app
from controlplane.db import init_db, make_engine
from controlplane.publisher import MemoryPublisher
from protocol import DESIRED_STATE_FILTER
from tests.support.controlplane import (
    DET_V1_DIGEST,
    DET_V2_DIGEST,
    api_client,
    register_version,
    serve_app,
    settings,
)
from tests.support.deploy import Setup, open_setup
from tests.support.mosquitto import Broker
from tests.support.mqtt_plane import ControlPlane, MqttPeer
from tests.support.ports import wait_until
from tests.support.rollout_plane import Plane, open_plane
from tests.support.trust import TrustKit


@pytest.fixture
def setup(tmp_path: Path, mosquitto: Broker) -> Iterator[Setup]:
    """A private broker, a blob server serving a trust chain, keys, and agent factories."""
    with open_setup(tmp_path, mosquitto) as env:
        yield env


@pytest.fixture
def bare_engine(database_url: str) -> Iterator[Engine]:
    """A fresh, empty control-plane database (SQLite, then PostgreSQL)."""
    engine = make_engine(database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A fresh control-plane database (SQLite, then PostgreSQL) with det 1.0.0 and 2.0.0."""
    engine = make_engine(database_url)
    init_db(engine)
    register_version(engine, "det", "1.0.0", digest=DET_V1_DIGEST)
    register_version(engine, "det", "2.0.0", digest=DET_V2_DIGEST)
    yield engine
    engine.dispose()


@pytest.fixture
def cp(
    tmp_path: Path, database_url: str, mosquitto: Broker, trust_kit: TrustKit
) -> Iterator[ControlPlane]:
    """The app under a real uvicorn, its MQTT bridge connected to a private Mosquitto (on
    SQLite, then PostgreSQL), and a test peer subscribed to every desired-state topic."""
    app = create_app(
        settings(tmp_path, trust_kit, mqtt_url=mosquitto.url, database_url=database_url)
    )
    peer = MqttPeer(mosquitto.port, "test-peer")
    peer.subscribe(DESIRED_STATE_FILTER)
    try:
        with serve_app(app) as url, api_client(url, timeout=10) as http:
            wait_until(lambda: http.get("/api/v1/status").json()["connected"], 10, "MQTT bridge")
            yield ControlPlane(http, peer, tmp_path, trust_kit)
    finally:
        peer.close()


@pytest.fixture
def plane(tmp_path: Path, trust_kit: TrustKit, database_url: str) -> Iterator[Plane]:
    """The in-process control plane of the rollout tests, MQTT in memory (SQLite, then
    PostgreSQL)."""
    with open_plane(tmp_path, trust_kit, database_url, MemoryPublisher()) as plane:
        yield plane
