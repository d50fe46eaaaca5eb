"""A row locked for an update is read afresh, not taken from the session's cache.

``session.get(..., with_for_update=True)`` returns the copy a session already holds
unless it is told to re-read it: a request that had read a device before another one
committed a change would otherwise lock the row and write its stale copy back (a second
target at the same generation, labels lost). SQLite and PostgreSQL. And an operator
action on a rollout another replica holds locked gives up after a bounded wait.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane import crud
from controlplane.crud.labels import update_labels
from controlplane.ingest import Ingester
from controlplane.models import DeploymentTarget, Device, utcnow
from controlplane.publisher import MemoryPublisher
from controlplane.rollouts import control, rows
from controlplane.rollouts.create import create_rollout
from controlplane.rollouts.policy import Strategy
from protocol import TopicKind, device_topic
from tests.support.controlplane import signer, state_report
from tests.support.identity import sealing
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


@pytest.fixture
def registered(engine: Engine, trust_kit: TrustKit) -> Engine:
    cmd = signer(engine, trust_kit)
    ingester = sealing(Ingester(engine, MemoryPublisher(), cmd), engine, cmd, trust_kit)
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1"))
    return engine


def test_a_deployment_after_a_stale_read_takes_the_next_generation(registered: Engine) -> None:
    with Session(registered) as late:
        cached = late.get(Device, "d1")  # read before the other request commits
        assert cached is not None and cached.generation == 0
        with Session(registered) as other:
            crud.create_deployment(other, model="det", version="1.0.0", fleet="f")
        crud.create_deployment(late, model="det", version="2.0.0", fleet="f")
    with Session(registered) as check:
        targets = check.exec(select(DeploymentTarget).where(DeploymentTarget.device_id == "d1"))
        generations = sorted(t.generation for t in targets)
        device = check.get(Device, "d1")
    assert generations == [1, 2]  # not two targets at generation 1
    assert device is not None and device.generation == 2


def test_labels_set_after_a_stale_read_keep_the_others(registered: Engine) -> None:
    with Session(registered) as late:
        assert late.get(Device, "d1") is not None
        with Session(registered) as other:
            update_labels(other, device_id="d1", set_labels={"region": "eu"}, remove=[])
        device = update_labels(late, device_id="d1", set_labels={"site": "s1"}, remove=[])
        assert device.labels == {"region": "eu", "site": "s1"}
    with Session(registered) as check:
        stored = check.get(Device, "d1")
        assert stored is not None and stored.labels == {"region": "eu", "site": "s1"}


def test_an_action_waits_a_bounded_time_for_a_rollout_another_replica_holds(
    registered: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if registered.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's (one SQLite process serialises itself)")
    with Session(registered) as session:
        rollout, _ = create_rollout(
            session,
            model="det",
            version="2.0.0",
            fleet="f",
            selector={},
            strategy=Strategy.from_json({}),
            now=utcnow(),
        )
    assert rollout.id is not None
    monkeypatch.setattr(rows, "LOCK_WAIT_S", 0.5)
    with Session(registered) as replica:  # another control plane stepping the rollout
        assert rows.lock_rollout(replica, rollout.id) is not None
        with Session(registered) as session, pytest.raises(rows.RolloutBusy) as busy:
            control.pause(session, rollout_id=rollout.id, reason=None, now=utcnow())
        assert busy.value.status_code == 503
        assert str(busy.value) == (
            f"rollout {rollout.id} is being changed by another control plane; try again"
        )
    with Session(registered) as session:  # released: the action goes through
        paused = control.pause(session, rollout_id=rollout.id, reason=None, now=utcnow())
        assert paused.state == "paused"
