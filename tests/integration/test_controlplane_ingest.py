"""Ingestion and desired-state derivation on SQLite and PostgreSQL, MQTT faked.

The MQTT seam is :class:`MemoryPublisher`; everything else (crud, ingest, desired) is the
real code on a throw-away database of each kind (the ``database_url`` fixture).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from controlplane import crud
from controlplane.bundles import verify_version
from controlplane.commands import CommandSigner, publish_commands
from controlplane.db import init_db
from controlplane.desired import desired
from controlplane.errors import BundleRejected, NotFound
from controlplane.ingest import Ingester
from controlplane.models import Deployment, Device
from controlplane.mqtt_bridge import MqttBridge
from controlplane.publisher import MemoryPublisher
from model_store import (
    FilesystemArtifactStore,
    build_trust_document,
    generate_private_key,
    load_private_key,
)
from model_store import load_public_key as public
from model_store.report_seal import seal_report
from protocol import (
    MAX_GENERATION,
    ActiveModel,
    Availability,
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    FileRef,
    Heartbeat,
    ModelFailure,
    ModelMetrics,
    Priority,
    TopicKind,
    device_topic,
    encode,
    parse_broker_url,
)
from tests.support.controlplane import register_version, signer, state_report
from tests.support.identity import (
    DeviceKeys,
    SealingIngester,
    database_enroller,
    device_ca,
    sealing,
)
from tests.support.migrations import forget_migrations, revision
from tests.support.mosquitto import Broker
from tests.support.mqtt_plane import MqttPeer
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

DIGEST = "ab" * 32
STATE = device_topic("d1", TopicKind.STATE)
_report = state_report
_version = register_version


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    return bare_engine  # empty: each test registers what it needs


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def cmd_signer(engine: Engine, trust_kit: TrustKit) -> CommandSigner:
    return signer(engine, trust_kit)


@pytest.fixture
def ingester(
    engine: Engine, publisher: MemoryPublisher, cmd_signer: CommandSigner, trust_kit: TrustKit
) -> SealingIngester:
    return sealing(Ingester(engine, publisher, cmd_signer), engine, cmd_signer, trust_kit)


def _device(engine: Engine, device_id: str) -> Device | None:
    with Session(engine) as session:
        return session.get(Device, device_id)


def _signed_up_to(
    engine: Engine, ingester: SealingIngester, device_id: str, generation: int, fleet: str = "f"
) -> None:
    """Register ``device_id`` as if this control plane had signed up to ``generation``
    (a report far above anything signed is not believed: see controlplane.status)."""
    ingester.handle(device_topic(device_id, TopicKind.STATE), _report(device_id, fleet))
    with Session(engine) as session:
        device = session.get(Device, device_id)
        assert device is not None
        device.generation = generation
        session.add(device)
        session.commit()


def test_an_enrolled_device_s_first_report_fills_in_its_row(
    ingester: SealingIngester, engine: Engine
) -> None:
    ingester.handle(
        device_topic("d1", TopicKind.STATE), _report("d1", "lab", hardware={"cpu": "x"})
    )
    device = _device(engine, "d1")
    assert device is not None and device.fleet == "lab" and device.online is True
    assert device.hardware == {"cpu": "x"} and device.status == "idle"
    with Session(engine) as session:
        assert [(f.name, n) for f, n in crud.list_fleets(session)] == [("lab", 1)]
    assert ingester.stats.applied == 1


def test_retained_report_does_not_mark_online(ingester: SealingIngester, engine: Engine) -> None:
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"), retained=True)
    device = _device(engine, "d1")
    assert device is not None and device.online is False


def test_malformed_forged_and_foreign_messages_are_counted_and_skipped(
    ingester: SealingIngester, engine: Engine
) -> None:
    ingester.enroll("d1")
    ingester.handle(device_topic("d1", TopicKind.STATE), b"{oops")  # sealed, not a report
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d2"))  # names another
    ingester.handle("some/other/topic", b"{}")
    ingester.handle(device_topic("d1", TopicKind.STATE), b"")  # retained message cleared
    ingester.handle(device_topic("d1", TopicKind.DESIRED), b"{}")  # our own message
    bad_fleet = _report("d1").replace(b'"fleet":"f"', b'"fleet":"bad/fleet"')
    ingester.handle(device_topic("d1", TopicKind.STATE), bad_fleet)  # the protocol refuses it
    ingester.ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))  # not sealed
    assert ingester.stats.malformed == 2
    assert ingester.stats.rejected == 2
    assert ingester.stats.unauthenticated == 1
    device = _device(engine, "d1")
    assert device is not None and device.last_report_at is None and device.status == "unknown"
    assert _device(engine, "d2") is None
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    device = _device(engine, "d1")
    assert device is not None and device.status == "idle"


def test_a_device_that_never_enrolled_is_never_registered(
    ingester: SealingIngester, engine: Engine
) -> None:
    topic = device_topic("ghost-001", TopicKind.STATE)
    ingester.ingester.handle(topic, _report("ghost-001"))  # plain JSON, as before enrollment
    own_key = generate_private_key()  # a key of its own making: signs, proves nothing
    forged = seal_report(
        own_key, device_id="ghost-001", stream="state", seq=1, body=_report("ghost-001")
    )
    ingester.ingester.handle(topic, forged)
    assert ingester.stats.unauthenticated == 2 and ingester.stats.applied == 0
    assert _device(engine, "ghost-001") is None


def test_deployment_bumps_generation_and_new_device_gets_latest(
    ingester: SealingIngester, engine: Engine, publisher: MemoryPublisher, cmd_signer: CommandSigner
) -> None:
    _version(engine)
    _version(engine, version="2.0.0")
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    with Session(engine) as session:
        with pytest.raises(NotFound, match="unknown fleet 'nope'"):
            crud.create_deployment(session, model="det", version="1.0.0", fleet="nope")
        _, _, targets = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        assert [t.generation for t in targets] == [1]
        assert publish_commands(session, cmd_signer, publisher, device_ids=["d1"]) == 1
        second, _, targets = crud.create_deployment(
            session, model="det", version="2.0.0", fleet="f"
        )
        assert [t.generation for t in targets] == [2]
        (state,) = desired(session)
        (assignment,) = state.assignments  # one model: its newest deployment wins
        assert state.target_generation == 2 and assignment.version == "2.0.0"
        assert assignment.deployment_id == second.id
        assert assignment.size == 10 + 20  # model.sig + model.onnx
    latest = publisher.latest("d1")
    assert latest is not None and latest.generation == 1

    # d2 joins with a generation of its own: it gets the latest deployment, above it
    ingester.handle(device_topic("d2", TopicKind.STATE), _report("d2", generation=7))
    joined = publisher.latest("d2")
    assert joined is not None and joined.generation == 8
    assert joined.trust_version == 1
    # a second report does not re-assign
    ingester.handle(device_topic("d2", TopicKind.STATE), _report("d2", generation=8))
    assert [s.generation for s in publisher.published if s.device_id == "d2"] == [8]


def test_events_move_targets_forward_only(ingester: SealingIngester, engine: Engine) -> None:
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


def test_availability(ingester: SealingIngester, engine: Engine) -> None:
    topic = device_topic("d1", TopicKind.AVAILABILITY)
    ingester.handle(topic, encode(Availability(device_id="d1", online=True)))  # unknown yet
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    ingester.handle(topic, encode(Availability(device_id="d1", online=False)))
    device = _device(engine, "d1")
    assert device is not None and device.online is False


def test_versions_are_refused_when_no_release_key_is_certified(
    tmp_path: Path, trust_kit: TrustKit
) -> None:
    store = FilesystemArtifactStore(tmp_path / "blobs")
    digest, size = store.put_stream([b"a signature"])
    ref = FileRef(path="model.sig", sha256=digest, size=size)
    no_release = build_trust_document(
        version=1,
        expires=datetime.now(UTC) + timedelta(days=1),
        roots=[public(trust_kit.root_pub)],
        releases=[],
        control_planes=[public(trust_kit.cp_pub)],
        signers=[load_private_key(trust_kit.root_key)],
    )
    with pytest.raises(BundleRejected, match="certifies no release key"):
        verify_version(store, no_release, name="det", version="1", signature=ref, files=[ref])


def test_heartbeats_are_kept_for_registered_devices_only(
    ingester: SealingIngester, engine: Engine
) -> None:
    topic = device_topic("d1", TopicKind.HEARTBEAT)
    beat = Heartbeat(
        device_id="d1",
        cpu_percent=12.5,
        rss_bytes=2**40,
        mem_total_bytes=2**36,
        mem_available_bytes=2**35,
        mem_percent=50.0,
        load_avg=(0.1, 0.2, 0.3),
        uptime_s=42.0,
    )
    ingester.ingester.handle(topic, encode(beat))  # from no enrolled device: dropped
    assert ingester.stats.applied == 0 and ingester.stats.unauthenticated == 1
    ingester.handle(STATE, _report("d1"))
    ingester.handle(topic, encode(beat))
    device = _device(engine, "d1")
    assert device is not None and device.last_heartbeat is not None
    assert device.last_heartbeat["cpu_percent"] == 12.5
    assert device.last_heartbeat["rss_bytes"] == 2**40
    assert ingester.stats.applied == 2 and ingester.stats.errors == 0
    # a spooled heartbeat delivered late never replaces newer figures
    late = beat.model_copy(update={"at": beat.at - timedelta(minutes=5), "cpu_percent": 99.0})
    ingester.handle(topic, encode(late))
    device = _device(engine, "d1")
    assert device is not None and device.last_heartbeat is not None
    assert device.last_heartbeat["cpu_percent"] == 12.5
    newer = beat.model_copy(update={"at": beat.at + timedelta(seconds=30), "cpu_percent": 7.0})
    ingester.handle(topic, encode(newer))
    device = _device(engine, "d1")
    assert device is not None and device.last_heartbeat is not None
    assert device.last_heartbeat["cpu_percent"] == 7.0


def test_64_bit_generations_are_stored_and_bumped(
    ingester: SealingIngester, engine: Engine, publisher: MemoryPublisher, cmd_signer: CommandSigner
) -> None:
    _version(engine)
    _signed_up_to(engine, ingester, "d1", 2**40 - 1)
    ingester.handle(STATE, _report("d1", generation=2**40))
    device = _device(engine, "d1")
    assert device is not None and device.reported_generation == 2**40
    with Session(engine) as session:
        _, _, targets = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        assert [t.generation for t in targets] == [2**40 + 1]
        assert publish_commands(session, cmd_signer, publisher) == 1
    latest = publisher.latest("d1")
    assert latest is not None and latest.generation == 2**40 + 1
    device = _device(engine, "d1")
    assert device is not None and device.generation == 2**40 + 1

    # a device at the very top: stored, but no higher generation exists to assign
    _signed_up_to(engine, ingester, "d2", MAX_GENERATION - 1, fleet="g")
    with Session(engine) as session:  # d2 joins fleet f only now, already at the top
        d2 = session.get(Device, "d2")
        assert d2 is not None
        d2.fleet = "f"
        session.add(d2)
        session.commit()
    ingester.handle(device_topic("d2", TopicKind.STATE), _report("d2", generation=MAX_GENERATION))
    top = _device(engine, "d2")
    assert top is not None and top.reported_generation == MAX_GENERATION
    assert publisher.latest("d2") is None
    with Session(engine) as session:
        _, _, targets = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        assert [t.device_id for t in targets] == ["d1"]
    assert ingester.stats.errors == 0 and ingester.stats.applied == 4


def test_a_report_the_database_cannot_store_is_logged_counted_and_skipped(
    ingester: SealingIngester, engine: Engine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses NUL characters in text; ingestion must carry on regardless."""
    caplog.set_level(logging.WARNING, logger="controlplane")
    ingester.handle(STATE, _report("d1", last_error="bad\x00byte"))
    if database_url.startswith("sqlite"):
        assert ingester.stats.errors == 0  # SQLite stores it
    else:
        device = _device(engine, "d1")
        assert ingester.stats.errors == 1 and device is not None and device.last_error is None
        (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        line = record.getMessage()
        assert "\n" not in line and "d1" in line and "NUL" in line, line
        assert record.exc_info is None
    ingester.handle(STATE, _report("d1", generation=3))
    device = _device(engine, "d1")
    assert device is not None and device.reported_generation == 3


def test_integer_generation_columns_of_an_older_database_are_widened(
    database_url: str, ingester: SealingIngester, engine: Engine
) -> None:
    if not database_url.startswith("sqlite"):  # SQLite's INTEGER is 64-bit already
        with engine.begin() as conn:  # a database made before migrations existed
            for table, column in revision("0001").GENERATION_COLUMNS:
                conn.execute(text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE INTEGER'))
            forget_migrations(conn)
    init_db(engine)  # what the next start-up does
    _version(engine)
    _signed_up_to(engine, ingester, "d1", 2**40 - 1)
    ingester.handle(STATE, _report("d1", generation=2**40))
    with Session(engine) as session:
        _, _, targets = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
    assert [t.generation for t in targets] == [2**40 + 1]
    assert ingester.stats.errors == 0


def _beat(at: datetime | None = None, requests: int = 0) -> bytes:
    figures = ModelMetrics(name="det", version="1.0.0", backend="b", requests=requests, errors=0)
    return encode(
        Heartbeat(
            device_id="d1",
            at=at or datetime.now(UTC),
            cpu_percent=1.0,
            rss_bytes=1,
            mem_total_bytes=2,
            mem_available_bytes=1,
            mem_percent=50.0,
            load_avg=(0.0, 0.0, 0.0),
            uptime_s=1.0,
            models=[figures],
        )
    )


def test_forged_reports_change_nothing_on_either_database(
    ingester: Ingester, engine: Engine, publisher: MemoryPublisher
) -> None:
    """A year-ahead heartbeat, a state report naming another fleet and an id past 64
    bits: rejected, ignored and malformed, on SQLite and PostgreSQL alike."""
    _version(engine)
    beat_topic = device_topic("d1", TopicKind.HEARTBEAT)
    ingester.handle(device_topic("d2", TopicKind.STATE), _report("d2", "evil"))
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="evil")
    ingester.handle(STATE, _report("d1", "f"))
    ingester.handle(beat_topic, _beat(datetime.now(UTC) + timedelta(days=365), requests=1))
    ingester.handle(STATE, _report("d1", "evil"))
    forged_event = {
        "device_id": "d1",
        "deployment_id": MAX_GENERATION + 1,
        "generation": 1,
        "model_name": "det",
        "model_version": "1.0.0",
        "kind": "failed",
    }
    ingester.handle(device_topic("d1", TopicKind.EVENTS), json.dumps(forged_event).encode())
    ingester.handle(beat_topic, _beat(requests=107))

    device = _device(engine, "d1")
    assert device is not None and device.fleet == "f" and publisher.latest("d1") is None
    assert device.last_heartbeat is not None
    assert device.last_heartbeat["models"][0]["requests"] == 107
    with Session(engine) as session:
        assert [(f.name, n) for f, n in crud.list_fleets(session)] == [("evil", 1), ("f", 1)]
    stats = ingester.stats
    assert (stats.applied, stats.rejected, stats.malformed, stats.errors) == (4, 1, 1, 0)


def test_a_bridge_on_a_real_broker_drops_oversized_reports_unread(
    engine: Engine, cmd_signer: CommandSigner, mosquitto: Broker, trust_kit: TrustKit
) -> None:
    """Seen: 20 heartbeats of 15 MB took the control plane from 127 MB to 1.49 GB (the
    ingest queue was bounded in messages only). Now a report over MAX_REPORT_BYTES is
    never queued: counted as malformed, and the next real report is ingested."""
    bridge = MqttBridge(parse_broker_url(mosquitto.url), engine, cmd_signer, client_id="cp-hygiene")
    bridge.start()
    device = MqttPeer(mosquitto.port, "d1")
    keys = DeviceKeys(database_enroller(engine, device_ca(cmd_signer, trust_kit)))
    try:
        assert bridge.wait_connected(10)
        device.publish(STATE, keys.seal(STATE, _report("d1")))
        wait_until(lambda: bridge.ingester.stats.applied == 1, 10, "state report ingested")
        big = b'{"device_id": "d1", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        for _ in range(20):
            device.publish(device_topic("d1", TopicKind.HEARTBEAT), big)
        beat = device_topic("d1", TopicKind.HEARTBEAT)
        device.publish(beat, keys.seal(beat, _beat(requests=107)))
        wait_until(lambda: bridge.ingester.stats.applied == 2, 20, "heartbeat ingested")
        assert (bridge.ingester.stats.malformed, bridge.dropped) == (20, 0)
        assert bridge.ingester.stats.received == 22
        stored = _device(engine, "d1")
        assert stored is not None and stored.last_heartbeat is not None
        assert stored.last_heartbeat["models"][0]["requests"] == 107
    finally:
        device.close()
        bridge.stop()


def test_a_device_desires_every_model_and_each_is_judged_on_its_own(
    ingester: SealingIngester, engine: Engine
) -> None:
    """Issue 14: the desired state is a set (a deployment of cls never touches det), a
    state report settles each model's target from that model's own failure, and an
    undeploy leaves the model out of the set and is done once the device drops it."""
    _version(engine, "det", "1.0.0", digest="aa" * 32)
    _version(engine, "cls", "1.0.0", digest="cc" * 32)
    ingester.handle(device_topic("d1", TopicKind.STATE), _report("d1"))
    with Session(engine) as session:
        det, _, _ = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        cls, _, _ = crud.create_deployment(session, model="cls", version="1.0.0", fleet="f")
        cls.priority = "high"  # the operator's priority for cls on these devices
        session.add(cls)
        session.commit()
        (state,) = desired(session)
        assert [(a.name, a.version, a.priority) for a in state.assignments] == [
            ("cls", "1.0.0", Priority.HIGH),
            ("det", "1.0.0", None),
        ]
        assert state.target_generation == 2
        det_id, cls_id = det.id, cls.id
    assert det_id is not None and cls_id is not None

    det_active = ActiveModel(name="det", version="1.0.0", bundle_digest="aa" * 32, backend="b")
    failure = ModelFailure(name="cls", version="1.0.0", deployment_id=cls_id, reason="too big")
    ingester.handle(
        device_topic("d1", TopicKind.STATE),
        _report(
            "d1",
            generation=2,
            status=DeviceStatus.FAILED,
            active=[det_active],
            last_error="cls 1.0.0: too big",
            failures=[failure],
        ),
    )
    with Session(engine) as session:
        det_target = crud.get_target(session, deployment_id=det_id, device_id="d1")
        cls_target = crud.get_target(session, deployment_id=cls_id, device_id="d1")
        assert det_target is not None and det_target.status == "activated"
        assert cls_target is not None and cls_target.status == "failed"
        assert cls_target.reason == "too big"

        # an undeploy of cls: left out of the set, done once the device drops it
        cls_version = crud.get_model_version(session, model="cls", version="1.0.0")
        assert cls_version is not None and cls_version.id is not None
        removal = Deployment(model_version_id=cls_version.id, fleet="f", remove=True)
        session.add(removal)
        session.flush()
        device = session.get(Device, "d1")
        assert device is not None
        target = crud.assign(session, device=device, deployment=removal)
        assert target is not None
        session.commit()
        removal_id = removal.id
        (state,) = desired(session)
        assert [a.name for a in state.assignments] == ["det"]
    assert removal_id is not None
    ingester.handle(
        device_topic("d1", TopicKind.STATE),
        _report("d1", generation=3, status=DeviceStatus.ACTIVE, active=[det_active]),
    )
    with Session(engine) as session:
        gone = crud.get_target(session, deployment_id=removal_id, device_id="d1")
        assert gone is not None and gone.status == "activated"
