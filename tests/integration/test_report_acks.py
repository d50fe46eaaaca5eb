"""The control plane's acknowledgements of stored reports (issue 13.4), at the real
ingester on SQLite and PostgreSQL: what it stored is acknowledged as stored, a resend its
replay window knows is acknowledged as stored again (not lost), one too old for the
window and one refused for good are acknowledged as lost; the acks open with the
device's report key and with nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from controlplane.commands import CommandSigner
from controlplane.ingest import Ingester
from controlplane.publisher import MemoryPublisher
from controlplane.report_acks import AckSender
from model_store.errors import SignatureError
from model_store.report_ack import open_ack
from model_store.report_seal import ReplayWindow
from protocol import Heartbeat, TopicKind, device_topic, encode
from protocol.topics import ack_topic
from tests.support.controlplane import signer, state_report
from tests.support.identity import SealingIngester, sealing
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

BEAT = device_topic("d1", TopicKind.HEARTBEAT)
STATE = device_topic("d1", TopicKind.STATE)


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    return bare_engine  # empty: each test registers what it needs


@pytest.fixture
def ing(engine: Engine, trust_kit: TrustKit) -> SealingIngester:
    cmd: CommandSigner = signer(engine, trust_kit)
    ingester = sealing(Ingester(engine, MemoryPublisher(), cmd), engine, cmd, trust_kit)
    ingester.enroll("d1")
    return ingester


def _beat(device: str = "d1") -> bytes:
    return encode(
        Heartbeat(
            device_id=device,
            at=datetime.now(UTC),
            cpu_percent=1.0,
            rss_bytes=1,
            mem_total_bytes=2,
            mem_available_bytes=1,
            mem_percent=50.0,
            load_avg=(0.0, 0.0, 0.0),
            uptime_s=1.0,
        )
    )


def _flush(ing: SealingIngester, engine: Engine) -> list[tuple[str, bytes]]:
    published: list[tuple[str, bytes]] = []
    sender = AckSender(
        ing.ingester.auth.report_key, lambda topic, raw: published.append((topic, raw)) is None
    )
    sender.flush(ing.ingester.acks)
    return published


def test_stored_resent_too_old_and_refused_reports_are_acknowledged(
    ing: SealingIngester, engine: Engine
) -> None:
    first = ing.seal(BEAT, _beat(), seq=1)
    ing.ingester.handle(BEAT, first)
    ing.ingester.handle(BEAT, first)  # a resend: already seen, so stored
    top = 1 + ReplayWindow.WIDTH + 5
    ing.ingester.handle(BEAT, ing.seal(BEAT, _beat(), seq=top))
    ing.ingester.handle(BEAT, ing.seal(BEAT, _beat(), seq=3))  # too old to tell
    ing.ingester.handle(BEAT, first)  # too old for the window, but remembered as stored
    ing.ingester.handle(BEAT, ing.seal(BEAT, _beat("d2"), seq=top + 1))  # names d2: refused
    ing.ingester.handle(STATE, ing.seal(STATE, state_report("d1", "f"), seq=top + 2))
    book = ing.ingester.acks
    assert (book.stored_total, book.lost_total) == (2, 2)  # the resend is not stored twice

    [(topic, raw)] = _flush(ing, engine)
    assert topic == ack_topic("d1")
    ack = open_ack(raw, ing.report_keys["d1"], device_id="d1")
    assert ack.stored == ((1, 1), (top, top))  # state reports are not spooled: not acked
    assert ack.lost == ((3, 3), (top + 1, top + 1))
    assert _flush(ing, engine) == []  # taken
    with pytest.raises(SignatureError):
        open_ack(raw, ing.report_keys["d1"], device_id="d2")


def test_unauthenticated_reports_are_not_acknowledged(ing: SealingIngester, engine: Engine) -> None:
    ing.enroll("d2")
    forged = ing.seal(BEAT, _beat(), key=ing.report_keys["d2"], seq=9)  # d2's key
    ing.ingester.handle(BEAT, forged)
    ing.ingester.handle(BEAT, _beat())  # not sealed at all
    assert len(ing.ingester.acks) == 0 and _flush(ing, engine) == []


def test_a_retained_report_is_not_acknowledged(ing: SealingIngester, engine: Engine) -> None:
    raw = ing.seal(STATE, state_report("d1", "f"))
    ing.ingester.handle(STATE, raw, retained=True)
    assert len(ing.ingester.acks) == 0
