"""End-to-end report authentication at the ingester, on SQLite and PostgreSQL.

Whatever the broker lets through, the control plane believes a report only if the key the
topic's device enrolled with sealed it, for that stream, with a sequence number not seen
before, dated no further ahead than the allowed skew. Each refusal is counted and logged
in one line; a revoked device is dropped; re-enrollment starts a new key and sequence.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.commands import CommandSigner, publish_commands
from controlplane.identity.enrollment import renew, revoke
from controlplane.identity.report_auth import MAX_CLOCK_SKEW, ReportAuthenticator
from controlplane.identity.tables import DeviceIdentity
from controlplane.ingest import Ingester
from controlplane.models import Device
from controlplane.publisher import MemoryPublisher
from model_store import generate_private_key
from model_store.device_certs import make_csr
from model_store.report_key import new_report_key, unwrap_report_key
from model_store.report_seal import WILL_STREAM
from protocol import Availability, Heartbeat, TopicKind, device_topic, encode
from tests.support.controlplane import signer, state_report
from tests.support.identity import SealingIngester, device_ca, sealing
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

STATE = device_topic("d1", TopicKind.STATE)
BEAT = device_topic("d1", TopicKind.HEARTBEAT)
AVAILABILITY = device_topic("d1", TopicKind.AVAILABILITY)


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    return bare_engine  # empty: each test registers what it needs


@pytest.fixture
def cmd(engine: Engine, trust_kit: TrustKit) -> CommandSigner:
    return signer(engine, trust_kit)


@pytest.fixture
def ing(engine: Engine, cmd: CommandSigner, trust_kit: TrustKit) -> SealingIngester:
    ingester = sealing(Ingester(engine, MemoryPublisher(), cmd), engine, cmd, trust_kit)
    ingester.enroll("d1")
    ingester.enroll("d2")
    return ingester


def _beat(cpu: float, at: datetime | None = None) -> bytes:
    return encode(
        Heartbeat(
            device_id="d1",
            at=at or datetime.now(UTC),
            cpu_percent=cpu,
            rss_bytes=1,
            mem_total_bytes=2,
            mem_available_bytes=1,
            mem_percent=50.0,
            load_avg=(0.0, 0.0, 0.0),
            uptime_s=1.0,
        )
    )


def _cpu(engine: Engine) -> float | None:
    with Session(engine) as session:
        device = session.get(Device, "d1")
        assert device is not None
        return (device.last_heartbeat or {}).get("cpu_percent")


def _feed(ing: SealingIngester, topic: str, sealed: bytes) -> None:
    ing.ingester.handle(topic, sealed)


def test_replays_are_dropped_and_reordering_within_the_window_is_not(
    ing: SealingIngester, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    first = ing.seal(BEAT, _beat(10.0))
    _feed(ing, BEAT, first)
    assert _cpu(engine) == 10.0
    caplog.set_level(logging.WARNING, logger="controlplane.ingest")
    _feed(ing, BEAT, first)  # captured and sent again
    assert ing.stats.replayed == 1 and ing.stats.applied == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "replayed" in line and "\n" not in line
    late = ing.seal(BEAT, _beat(20.0), seq=5)
    early = ing.seal(BEAT, _beat(30.0), seq=3)  # QoS 1 delivery out of order: both believed
    _feed(ing, BEAT, late)
    _feed(ing, BEAT, early)
    assert ing.stats.applied == 3 and ing.stats.replayed == 1
    _feed(ing, BEAT, early)
    assert ing.stats.replayed == 2


def test_other_keys_devices_and_streams_are_unauthenticated(
    ing: SealingIngester, engine: Engine
) -> None:
    stranger = generate_private_key()
    _feed(ing, BEAT, ing.seal(BEAT, _beat(1.0), key=stranger))
    _feed(ing, BEAT, ing.seal(BEAT, _beat(2.0), key=ing.keys["d2"]))  # d2's key, d1's topic
    moved = ing.seal(device_topic("d2", TopicKind.HEARTBEAT), _beat(3.0))
    _feed(ing, BEAT, moved)  # d2's sealed report republished on d1's topic
    _feed(ing, STATE, ing.seal(BEAT, _beat(4.0)))  # a heartbeat sealed for another stream
    _feed(ing, BEAT, _beat(5.0))  # plain JSON, as before enrollment existed
    _feed(ing, BEAT, ing.seal(BEAT, _beat(6.0), key=ing.report_keys["d2"]))  # d2's MAC key
    _feed(ing, BEAT, ing.seal(BEAT, _beat(7.0), key=new_report_key()))  # a made-up MAC key
    assert ing.stats.unauthenticated == 7 and ing.stats.applied == 0
    assert _cpu(engine) is None


def test_a_device_without_a_report_key_signs_until_its_renewal_brings_one(
    ing: SealingIngester, engine: Engine, cmd: CommandSigner, trust_kit: TrustKit
) -> None:
    with Session(engine) as session:  # enrolled before report keys existed
        identity = session.get(DeviceIdentity, "d1")
        assert identity is not None and identity.report_key is not None
        identity.report_key = None
        session.add(identity)
        session.commit()
    ing.ingester.auth = ReportAuthenticator()  # a control plane started since
    key = ing.keys["d1"]
    _feed(ing, BEAT, ing.seal(BEAT, _beat(1.0), key=key))  # signed with its enrolled key
    _feed(ing, BEAT, ing.seal(BEAT, _beat(2.0)))  # its old report key is no longer known
    assert (ing.stats.applied, ing.stats.unauthenticated, _cpu(engine)) == (1, 1, 1.0)
    with Session(engine) as session:
        issued = renew(session, device_ca(cmd, trust_kit), csr_pem=make_csr(key, "d1").decode())
    mac = unwrap_report_key(issued.wrapped_report_key, key, device_id="d1")
    assert mac != ing.report_keys["d1"]
    _feed(ing, BEAT, ing.seal(BEAT, _beat(3.0), key=mac))
    assert (ing.stats.applied, _cpu(engine)) == (2, 3.0)
    with Session(engine) as session:  # a renewal keeps the key it gave
        again = renew(session, device_ca(cmd, trust_kit), csr_pem=make_csr(key, "d1").decode())
    assert unwrap_report_key(again.wrapped_report_key, key, device_id="d1") == mac
    _feed(ing, BEAT, ing.seal(BEAT, _beat(4.0), key=key))  # its signature is still good
    assert (ing.stats.applied, _cpu(engine)) == (3, 4.0)


def test_a_report_from_the_future_is_dropped_and_never_freezes_the_figures(
    ing: SealingIngester, engine: Engine
) -> None:
    ahead = datetime.now(UTC) + timedelta(days=365)
    _feed(ing, BEAT, ing.seal(BEAT, _beat(99.0, at=ahead), sent_at=ahead))
    assert ing.stats.future == 1 and _cpu(engine) is None
    within = datetime.now(UTC) + MAX_CLOCK_SKEW / 2  # a device clock a little ahead
    _feed(ing, BEAT, ing.seal(BEAT, _beat(7.0), sent_at=within))
    _feed(ing, BEAT, ing.seal(BEAT, _beat(8.0)))
    assert ing.stats.future == 1 and _cpu(engine) == 8.0


def test_the_will_stream_carries_the_offline_notice(ing: SealingIngester, engine: Engine) -> None:
    ing.handle(STATE, state_report("d1"))
    offline = encode(Availability(device_id="d1", online=False))
    _feed(ing, AVAILABILITY, ing.seal(AVAILABILITY, offline, stream=WILL_STREAM))
    with Session(engine) as session:
        device = session.get(Device, "d1")
        assert device is not None and device.online is False
    # the will stream is only good for availability
    _feed(ing, STATE, ing.seal(STATE, state_report("d1"), stream=WILL_STREAM))
    assert ing.stats.unauthenticated == 1


def test_a_revoked_device_is_dropped_and_gets_no_command_until_it_enrolls_again(
    ing: SealingIngester, engine: Engine, cmd: CommandSigner
) -> None:
    from controlplane import crud
    from tests.support.controlplane import register_version

    register_version(engine)
    ing.handle(STATE, state_report("d1"))
    publisher = MemoryPublisher()
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        assert publish_commands(session, cmd, publisher, device_ids=["d1"]) == 1
        revoke(session, device_id="d1")
        assert publish_commands(session, cmd, publisher, device_ids=["d1"]) == 0
    ing.handle(BEAT, _beat(1.0))
    assert ing.stats.unauthenticated == 1 and _cpu(engine) is None
    ing.enroll("d1")  # re-enrolled: a new key, a new sequence from 1
    ing.handle(BEAT, _beat(2.0))
    assert _cpu(engine) == 2.0
    with Session(engine) as session:
        assert publish_commands(session, cmd, publisher, device_ids=["d1"]) == 1
