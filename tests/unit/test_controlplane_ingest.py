"""Ingestion and desired-state derivation on a real SQLite database, MQTT faked.

The MQTT seam is :class:`MemoryPublisher`; everything else (crud, ingest, desired) is the
real code on a throw-away SQLite file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import crud
from controlplane.bundles import verify_version
from controlplane.db import init_db, make_engine
from controlplane.desired import desired_states, publish_desired
from controlplane.errors import NotFound, Unavailable
from controlplane.ingest import Ingester
from controlplane.models import Device
from controlplane.publisher import MemoryPublisher
from model_store import FilesystemArtifactStore
from protocol import (
    Availability,
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    FileRef,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)

DIGEST = "ab" * 32


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    init_db(engine)
    return engine


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def ingester(engine: Engine, publisher: MemoryPublisher) -> Ingester:
    return Ingester(engine, publisher)


def _report(device_id: str, fleet: str = "f", generation: int = 0, **kw: object) -> bytes:
    return encode(
        StateReport(
            device_id=device_id,
            fleet=fleet,
            agent_version="1",
            status=DeviceStatus.IDLE,
            generation=generation,
            **kw,  # type: ignore[arg-type]
        )
    )


def _version(engine: Engine, name: str = "det", version: str = "1.0.0") -> None:
    with Session(engine) as session:
        crud.create_model_version(
            session,
            model=name,
            version=version,
            bundle_digest=DIGEST,
            signature=FileRef(path="model.sig", sha256="cd" * 32, size=10),
            files=[FileRef(path="model.onnx", sha256="ef" * 32, size=20)],
            metadata={"name": name, "version": version},
            key_id="k",
        )


def _device(engine: Engine, device_id: str) -> Device | None:
    with Session(engine) as session:
        return session.get(Device, device_id)


def test_first_report_registers_device_and_fleet(ingester: Ingester, engine: Engine) -> None:
    ingester.handle(
        device_topic("d1", TopicKind.STATE), _report("d1", "lab", hardware={"cpu": "x"})
    )
    device = _device(engine, "d1")
    assert device is not None and device.fleet == "lab" and device.online is True
    assert device.hardware == {"cpu": "x"} and device.status == "idle"
    with Session(engine) as session:
        assert [(f.name, n) for f, n in crud.list_fleets(session)] == [("lab", 1)]
    assert ingester.stats.applied == 1


def test_retained_report_does_not_mark_online(ingester: Ingester, engine: Engine) -> None:
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"), retained=True)
    device = _device(engine, "d1")
    assert device is not None and device.online is False


def test_malformed_forged_and_foreign_messages_are_counted_and_skipped(
    ingester: Ingester, engine: Engine
) -> None:
    ingester.handle(device_topic("d1", TopicKind.STATE), b"{oops")
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d2"))
    ingester.handle("some/other/topic", b"{}")
    ingester.handle(device_topic("d1", TopicKind.STATE), b"")  # retained message cleared
    ingester.handle(device_topic("d1", TopicKind.DESIRED), b"{}")  # our own message
    bad_fleet = _report("d1").replace(b'"fleet":"f"', b'"fleet":"bad/fleet"')
    ingester.handle(device_topic("d1", TopicKind.STATE), bad_fleet)  # the protocol refuses it
    assert ingester.stats.malformed == 2
    assert ingester.stats.rejected == 2
    assert _device(engine, "d1") is None and _device(engine, "d2") is None
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    assert _device(engine, "d1") is not None


def test_deployment_bumps_generation_and_new_device_gets_latest(
    ingester: Ingester, engine: Engine, publisher: MemoryPublisher
) -> None:
    _version(engine)
    _version(engine, version="2.0.0")
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    with Session(engine) as session:
        with pytest.raises(NotFound, match="unknown fleet 'nope'"):
            crud.create_deployment(session, model="det", version="1.0.0", fleet="nope")
        _, _, targets = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        assert [t.generation for t in targets] == [1]
        assert publish_desired(session, publisher, device_ids=["d1"]) == 1
        second, _, targets = crud.create_deployment(
            session, model="det", version="2.0.0", fleet="f"
        )
        assert [t.generation for t in targets] == [2]
        (state,) = desired_states(session)
        assert state.generation == 2 and state.models[0].version == "2.0.0"
        assert state.models[0].deployment_id == second.id
    latest = publisher.latest("d1")
    assert latest is not None and latest.generation == 1

    # d2 joins with a generation of its own: it gets the latest deployment, above it
    ingester.handle(device_topic("d2", TopicKind.STATE), _report("d2", generation=7))
    joined = publisher.latest("d2")
    assert joined is not None and joined.generation == 8
    assert joined.models[0].deployment_id == second.id
    # a second report does not re-assign
    ingester.handle(device_topic("d2", TopicKind.STATE), _report("d2", generation=8))
    assert [s.generation for s in publisher.published if s.device_id == "d2"] == [8]


def test_events_move_targets_forward_only(ingester: Ingester, engine: Engine) -> None:
    _version(engine)
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    with Session(engine) as session:
        deployment, _, _ = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
    topic = device_topic("d1", TopicKind.EVENTS)

    def event(kind: EventKind, reason: str | None = None) -> bytes:
        return encode(
            DeploymentEvent(
                device_id="d1",
                deployment_id=deployment.id,
                generation=1,
                model_name="det",
                model_version="1.0.0",
                kind=kind,
                reason=reason,
            )
        )

    ingester.handle(topic, event(EventKind.VERIFIED))
    ingester.handle(topic, event(EventKind.RECEIVED))  # late duplicate: ignored
    with Session(engine) as session:
        assert deployment.id is not None
        target = crud.get_target(session, deployment_id=deployment.id, device_id="d1")
        assert target is not None and target.status == "verified"
    ingester.handle(topic, event(EventKind.FAILED, "signature does not verify"))
    with Session(engine) as session:
        target = crud.get_target(session, deployment_id=deployment.id, device_id="d1")
        assert target is not None and target.status == "failed"
        assert target.reason == "signature does not verify"


def test_availability(ingester: Ingester, engine: Engine) -> None:
    topic = device_topic("d1", TopicKind.AVAILABILITY)
    ingester.handle(topic, encode(Availability(device_id="d1", online=True)))  # unknown yet
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    ingester.handle(topic, encode(Availability(device_id="d1", online=False)))
    device = _device(engine, "d1")
    assert device is not None and device.online is False


def test_versions_are_refused_without_trusted_keys(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path / "blobs")
    ref = FileRef(path="model.sig", sha256=DIGEST, size=1)
    with pytest.raises(Unavailable, match="no trusted release keys"):
        verify_version(store, [], name="det", version="1", signature=ref, files=[ref])
