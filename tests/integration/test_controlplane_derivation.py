"""Deployment targets settle from state reports when events were lost (SQLite and PostgreSQL).

Real ingestion (crud, ingest, status rules) on a throw-away database of each kind; no
DeploymentEvent is sent unless a test says so, as if they were published while offline.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import crud
from controlplane.ingest import Ingester
from controlplane.publisher import MemoryPublisher
from protocol import (
    ActiveModel,
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import (
    DET_V1_DIGEST,
    DET_V2_DIGEST,
    signer,
    state_report,
)
from tests.support.identity import SealingIngester, sealing
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

A, B = DET_V1_DIGEST, DET_V2_DIGEST
STATE = device_topic("d1", TopicKind.STATE)


@pytest.fixture
def ingester(engine: Engine, trust_kit: TrustKit) -> SealingIngester:
    cmd = signer(engine, trust_kit)
    ingester = sealing(Ingester(engine, MemoryPublisher(), cmd), engine, cmd, trust_kit)
    ingester.handle(STATE, state_report("d1"))  # registered at generation 0
    return ingester


def deploy(engine: Engine, version: str) -> int:
    with Session(engine) as session:
        deployment, _, _ = crud.create_deployment(session, model="det", version=version, fleet="f")
    assert deployment.id is not None
    return deployment.id


def target(engine: Engine, deployment_id: int) -> tuple[str, str | None]:
    with Session(engine) as session:
        found = crud.get_target(session, deployment_id=deployment_id, device_id="d1")
        assert found is not None
        return found.status, found.reason


def running(digest: str, version: str) -> list[ActiveModel]:
    return [ActiveModel(name="det", version=version, bundle_digest=digest, backend="ort-cpu")]


def report(ingester: SealingIngester, generation: int, **fields: Any) -> None:
    ingester.handle(STATE, state_report("d1", generation=generation, **fields))
    assert ingester.stats.errors == 0 and ingester.stats.rejected == 0


def test_a_report_running_the_bundle_activates_the_target(
    ingester: SealingIngester, engine: Engine
) -> None:
    first = deploy(engine, "1.0.0")
    report(ingester, 0, status=DeviceStatus.DOWNLOADING)  # not processed yet
    assert target(engine, first) == ("pending", None)
    report(ingester, 1, status=DeviceStatus.ACTIVE, active=running(A, "1.0.0"))
    assert target(engine, first) == ("activated", None)


def test_a_report_with_an_error_fails_the_target_and_a_retry_activates_it(
    ingester: SealingIngester, engine: Engine
) -> None:
    first = deploy(engine, "1.0.0")
    error = "det 1.0.0: download timed out"
    report(ingester, 1, status=DeviceStatus.FAILED, last_error=error)
    assert target(engine, first) == ("failed", error)
    # the agent retried the transient failure of the same generation, and it worked
    report(ingester, 1, status=DeviceStatus.ACTIVE, active=running(A, "1.0.0"))
    assert target(engine, first) == ("activated", None)
    # an error report later does not undo an activation
    report(ingester, 1, status=DeviceStatus.ACTIVE, last_error="something else")
    assert target(engine, first) == ("activated", None)


def test_a_failed_update_keeps_the_previous_deployment_activated(
    ingester: SealingIngester, engine: Engine
) -> None:
    first = deploy(engine, "1.0.0")
    second = deploy(engine, "2.0.0")  # generation 2; the device never saw generation 1
    error = "det 2.0.0: signature does not verify"
    # the device had run 1.0.0 from before, processed generation 2 and kept 1.0.0 serving
    report(ingester, 2, status=DeviceStatus.ACTIVE, active=running(A, "1.0.0"), last_error=error)
    assert target(engine, second) == ("failed", error)
    assert target(engine, first) == ("activated", None)


def test_a_superseded_target_is_not_failed_by_a_later_error(
    ingester: SealingIngester, engine: Engine
) -> None:
    first = deploy(engine, "1.0.0")
    second = deploy(engine, "2.0.0")
    report(ingester, 2, status=DeviceStatus.FAILED, last_error="det 2.0.0: out of memory")
    assert target(engine, first) == ("pending", None)
    assert target(engine, second) == ("failed", "det 2.0.0: out of memory")


def test_events_and_reports_agree(ingester: SealingIngester, engine: Engine) -> None:
    first = deploy(engine, "1.0.0")
    event = DeploymentEvent(
        device_id="d1",
        deployment_id=first,
        generation=1,
        model_name="det",
        model_version="1.0.0",
        kind=EventKind.VERIFIED,
    )
    ingester.handle(device_topic("d1", TopicKind.EVENTS), encode(event))
    assert target(engine, first) == ("verified", None)
    report(ingester, 1, status=DeviceStatus.ACTIVE, active=running(A, "1.0.0"))
    assert target(engine, first) == ("activated", None)
    ingester.handle(device_topic("d1", TopicKind.EVENTS), encode(event))  # a late duplicate
    assert target(engine, first) == ("activated", None)
