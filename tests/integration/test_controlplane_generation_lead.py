"""A state report cannot make the control plane sign the maximum generation.

Anyone able to publish on a device's state topic could otherwise report a huge
generation; the control plane would sign the next one and the device could never be
given another command (review finding). Reports within a bounded lead are still believed
(a database restored from a backup lags its devices)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import crud
from controlplane.commands import publish_commands
from controlplane.ingest import Ingester
from controlplane.publisher import MemoryPublisher
from controlplane.status import REPORT_LEAD_LIMIT
from protocol import MAX_GENERATION, TopicKind, device_topic
from tests.support.controlplane import open_command, signer, state_report
from tests.support.identity import sealing
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


def _latest_generation(publisher: MemoryPublisher, kit: TrustKit) -> int:
    return open_command(publisher.published[-1].raw, kit).generation


@pytest.mark.parametrize("lead", [MAX_GENERATION // 2, REPORT_LEAD_LIMIT])
def test_reported_generation_is_believed_only_within_a_bounded_lead(
    engine: Engine, trust_kit: TrustKit, lead: int
) -> None:
    commands = signer(engine, trust_kit)
    publisher = MemoryPublisher()
    ingester = sealing(Ingester(engine, publisher, commands), engine, commands, trust_kit)
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1"))
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
    with Session(engine) as session:
        publish_commands(session, commands, publisher)
    signed = _latest_generation(publisher, trust_kit)

    reported = signed + lead  # a forged report, or a device ahead of a restored database
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1", generation=reported))
    with Session(engine) as session:
        publish_commands(session, commands, publisher, changed_only=True)
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="2.0.0", fleet="f")
    with Session(engine) as session:
        publish_commands(session, commands, publisher)
    latest = _latest_generation(publisher, trust_kit)
    if lead > REPORT_LEAD_LIMIT:
        assert signed < latest <= signed + 2  # the far-ahead report was not believed
    else:
        assert reported < latest <= reported + 3  # believed: the device accepts the next one
