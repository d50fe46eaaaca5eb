"""Reports that cross on the way (two replicas sharing reports, a resend): an older state
report of a device, arriving after a newer one, does not overwrite it; its sequence
number still counts, and a later one applies. Real sealed reports, real SQLite."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.models import Device
from protocol import DeviceStatus, TopicKind, device_topic
from tests.support.controlplane import state_report
from tests.support.identity import SealingIngester

STATE = device_topic("d1", TopicKind.STATE)


def status(engine: Engine) -> str:
    with Session(engine) as session:
        device = session.get(Device, "d1")
        assert device is not None
        return str(device.status)


def test_an_older_state_report_never_overwrites_a_newer_one(
    ingester: SealingIngester, engine: Engine
) -> None:
    ingester.handle(STATE, state_report("d1"))  # registers d1 (seq 1)
    older = ingester.seal(STATE, state_report("d1", status=DeviceStatus.DOWNLOADING), seq=5)
    newer = ingester.seal(STATE, state_report("d1", status=DeviceStatus.ACTIVE), seq=6)
    ingester.ingester.handle(STATE, newer)
    ingester.ingester.handle(STATE, older)  # crossed on the way: believed, not applied
    assert status(engine) == DeviceStatus.ACTIVE
    assert ingester.stats.replayed == 0
    later = ingester.seal(STATE, state_report("d1", status=DeviceStatus.FAILED), seq=7)
    ingester.ingester.handle(STATE, later)
    assert status(engine) == DeviceStatus.FAILED
