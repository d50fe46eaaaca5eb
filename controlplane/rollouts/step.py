"""One step of a running rollout: build the policy's views from the database, call
:func:`controlplane.rollouts.policy.decide`, apply its decision.

The views come from the rollout's ``RolloutDevice`` rows, the ``DeploymentTarget`` of
each device in the rollout's deployment (status and reason) and each device's latest
heartbeat (``Device.last_heartbeat["models"]``: the new version's figures are the
``observed`` ones; the previous version's, captured when the device's batch starts, its
``baseline``). Applying a decision writes device statuses, batch times, the state and
the history; starting a batch assigns the new version to its devices. Nothing is
published here: the caller publishes the returned device ids' commands after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from controlplane.crud.catalog import assign
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    ModelVersion,
    Rollout,
    RolloutDevice,
)
from controlplane.rollouts import states
from controlplane.rollouts.control import abort_rollout
from controlplane.rollouts.plan import counted
from controlplane.rollouts.policy import (
    ActionKind,
    Decision,
    DeviceView,
    Figures,
    RolloutDeviceStatus,
    RolloutView,
    Strategy,
    decide,
    record,
)
from controlplane.rollouts.rows import (
    ROLLOUT_LOCK,
    figures,
    heartbeat_figures,
    lock_rollout,
    note,
    previous_versions,
    wanted,
)
from controlplane.rollouts.states import DriverMove
from controlplane.schemas import as_utc

logger = logging.getLogger(__name__)

#: Device statuses whose new-version figures are worth watching.
_WATCHED = {
    RolloutDeviceStatus.UPDATING.value,
    RolloutDeviceStatus.RETRYING.value,
    RolloutDeviceStatus.ACTIVATED.value,
    RolloutDeviceStatus.FAILED.value,  # it may activate after all
}


#: Device statuses whose every entry goes into the rollout's history (not ``retrying``:
#: an agent may retry many times before its deadline; the row shows the latest reason).
_NOTED = (RolloutDeviceStatus.FAILED, RolloutDeviceStatus.REGRESSED)


def step(
    session: Session, rollout_id: int, *, now: datetime, skip_locked: bool = True
) -> list[str]:
    """Decide and apply one step of rollout ``rollout_id`` if it is running; if it is
    paused, record what its devices reported (``policy.record``) (committed).

    Returns the ids of the devices whose desired state changed (to publish: none for a
    paused one). A rollout another replica is stepping (locked) or that is neither
    running nor paused is left alone.
    """
    with ROLLOUT_LOCK:
        rollout = lock_rollout(session, rollout_id, skip_locked=skip_locked)
        if rollout is None or rollout.state not in states.ACTIVE_STATES:
            session.rollback()
            return []
        if states.is_driven(rollout.state):
            changed = advance(session, rollout, now=now)
        else:
            changed = _record(session, rollout, now=now)
        session.commit()
    return changed


def _rows(session: Session, rollout: Rollout) -> list[RolloutDevice]:
    statement = (
        select(RolloutDevice)
        .where(RolloutDevice.rollout_id == rollout.id)
        .order_by(col(RolloutDevice.batch), col(RolloutDevice.device_id))
    )
    return list(session.exec(statement).all())


def batch_label(strategy: Strategy, index: int, count: int) -> str:
    if index == 0 and (strategy.canary is not None or strategy.canary_pct is not None):
        return f"canary batch (1 of {count})"
    return f"batch {index + 1} of {count}"


def advance(session: Session, rollout: Rollout, *, now: datetime) -> list[str]:
    """One decision for ``rollout`` (running, locked by the caller), applied, not committed."""
    strategy = Strategy.from_json(rollout.strategy)
    rows = _rows(session, rollout)
    heartbeats = _heartbeats(session, [row.device_id for row in rows if row.status in _WATCHED])
    targets = _targets(session, rollout, rows)
    versions = _versions(session, rollout, rows)
    for row in rows:
        if row.status in _WATCHED:
            version = versions[wanted(rollout, row)]
            seen = heartbeat_figures(heartbeats.get(row.device_id), rollout.model, version)
            if seen is not None and seen != row.observed:
                row.observed = seen
                session.add(row)
    views = [_device_view(row, targets.get(row.device_id)) for row in rows]
    decision = decide(_rollout_view(rollout, strategy, rows), views, as_utc(now))
    return _apply(session, rollout, strategy, rows, decision, now)


def _record(session: Session, rollout: Rollout, *, now: datetime) -> list[str]:
    """A paused rollout's rows brought up to what its devices reported; nothing else
    moves (so nothing to publish)."""
    rows = _rows(session, rollout)
    targets = _targets(session, rollout, rows)
    decision = record([_device_view(row, targets.get(row.device_id)) for row in rows])
    if decision.devices:  # (its strategy is not read: a paused rollout may be one that
        # could not be stepped, paused so an operator looks into it)
        _apply_devices(session, rollout, rows, decision, now)
        rollout.updated_at = now
        session.add(rollout)
    return []


def _heartbeats(session: Session, device_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """The kept heartbeat of each of ``device_ids`` (that column alone: a tick reads it for
    every device the rollout watches)."""
    if not device_ids:
        return {}
    query = select(Device.id, Device.last_heartbeat).where(col(Device.id).in_(device_ids))
    return dict(session.exec(query).all())  # type: ignore[arg-type]


def _versions(session: Session, rollout: Rollout, rows: Sequence[RolloutDevice]) -> dict[int, str]:
    ids = {wanted(rollout, row) for row in rows} | {rollout.model_version_id}
    found = session.exec(select(ModelVersion).where(col(ModelVersion.id).in_(ids))).all()
    return {v.id: v.version for v in found if v.id is not None} | {
        rollout.model_version_id: rollout.version
    }


def _targets(
    session: Session, rollout: Rollout, rows: Sequence[RolloutDevice]
) -> dict[str, DeploymentTarget]:
    """Per device, its latest target of the rollout's deployment of the version it is
    sent (an abort's deployments of the same rollout send other versions)."""
    want = {row.device_id: wanted(rollout, row) for row in rows}
    found: dict[str, DeploymentTarget] = {}
    statement = (
        select(DeploymentTarget, Deployment.model_version_id)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .where(
            Deployment.rollout_id == rollout.id,
            Deployment.remove == rollout.remove,  # not an abort's deployments
            col(DeploymentTarget.device_id).in_(list(want)),
        )
        .order_by(col(DeploymentTarget.generation).desc())
    )
    for target, version_id in session.exec(statement).all():
        if want.get(target.device_id) == version_id:
            found.setdefault(target.device_id, target)
    return found


def _deployment(session: Session, rollout: Rollout, version_id: int, now: datetime) -> Deployment:
    """The rollout's deployment of ``version_id`` (made on first use: a rollback sends
    several versions)."""
    if version_id == rollout.model_version_id:
        main = session.get(Deployment, rollout.deployment_id)
        assert main is not None
        return main
    found = session.exec(
        select(Deployment)
        .where(Deployment.rollout_id == rollout.id, Deployment.model_version_id == version_id)
        .order_by(col(Deployment.id))
    ).first()
    if found is None:
        found = Deployment(
            model_version_id=version_id,
            fleet=rollout.fleet,
            rollout_id=rollout.id,
            created_at=now,
            priority=rollout.priority,
        )
        session.add(found)
        session.flush()
    return found


def _rollout_view(
    rollout: Rollout, strategy: Strategy, rows: Sequence[RolloutDevice]
) -> RolloutView:
    return RolloutView(
        state=rollout.state,
        strategy=strategy,
        batch_count=max((row.batch for row in rows), default=-1) + 1,
        current_batch=rollout.current_batch,
        batch_started_at=as_utc(rollout.batch_started_at) if rollout.batch_started_at else None,
        batch_done_at=as_utc(rollout.batch_done_at) if rollout.batch_done_at else None,
    )


def _device_view(row: RolloutDevice, target: DeploymentTarget | None) -> DeviceView:
    return DeviceView(
        device_id=row.device_id,
        batch=row.batch,
        status=RolloutDeviceStatus(row.status),
        target_status=target.status if target is not None else None,
        target_reason=target.reason if target is not None else None,
        baseline=Figures.from_json(row.baseline),
        observed=Figures.from_json(row.observed),
        activated_at=as_utc(row.activated_at) if row.activated_at else None,
        judged=row.judged_at is not None,
    )


def _apply(
    session: Session,
    rollout: Rollout,
    strategy: Strategy,
    rows: Sequence[RolloutDevice],
    decision: Decision,
    now: datetime,
) -> list[str]:
    count = max((row.batch for row in rows), default=-1) + 1
    _apply_devices(session, rollout, rows, decision, now)
    if decision.batch_done and rollout.batch_done_at is None:
        rollout.batch_done_at = now
        batch = [r for r in rows if r.batch == rollout.current_batch]
        failed = sum(r.status != RolloutDeviceStatus.ACTIVATED.value for r in batch)
        label = batch_label(strategy, rollout.current_batch, count)
        message = f"{label} done: {counted(len(batch))}, {failed} not updated"
        note(rollout, "batch_done", message, now, batch=rollout.current_batch)
    if decision.devices or decision.action or decision.batch_done:
        rollout.updated_at = now
    changed: list[str] = []
    action = decision.action
    if action is ActionKind.START_BATCH and decision.batch is not None:
        batch = [r for r in rows if r.batch == decision.batch]
        changed = start_batch(session, rollout, batch, index=decision.batch, count=count, now=now)
    elif action is ActionKind.COMPLETE:
        rollout.state = states.after(rollout.state, DriverMove.COMPLETE).value
        rollout.reason = decision.reason
        note(rollout, "completed", decision.reason or "completed", now)
        logger.info("rollout %s completed: %s", rollout.id, decision.reason)
    elif action is ActionKind.PAUSE:
        rollout.state = states.after(rollout.state, DriverMove.AUTO_PAUSE).value
        rollout.reason = decision.reason
        note(rollout, "paused", decision.reason or "paused", now)
        logger.warning("rollout %s paused: %s", rollout.id, decision.reason)
    elif action is ActionKind.ABORT:
        reason = decision.reason or "aborted"
        changed = abort_rollout(
            session, rollout, reason=reason, now=now, move=DriverMove.AUTO_ABORT
        )
    session.add(rollout)
    return changed


def _apply_devices(
    session: Session,
    rollout: Rollout,
    rows: Sequence[RolloutDevice],
    decision: Decision,
    now: datetime,
) -> None:
    """The decision's device changes written to their rows (with the history's notes)."""
    by_id = {row.device_id: row for row in rows}
    for change in decision.devices:
        row = by_id.get(change.device_id)
        if row is None:
            continue
        was = row.status
        row.status = change.status.value
        row.reason = change.reason
        row.updated_at = now
        if change.status is RolloutDeviceStatus.ACTIVATED and was != change.status.value:
            row.activated_at, row.judged_at = now, None  # judged afresh on this activation
            if was == RolloutDeviceStatus.FAILED.value:
                note(rollout, "device_recovered", f"{row.device_id}: activated after all", now)
        if change.passed:
            row.judged_at = now
        if change.status in _NOTED and was != change.status.value:
            note(rollout, f"device_{change.status.value}", f"{row.device_id}: {change.reason}", now)
        session.add(row)


def start_batch(
    session: Session,
    rollout: Rollout,
    batch: Sequence[RolloutDevice],
    *,
    index: int,
    count: int,
    now: datetime,
) -> list[str]:
    """Assign the new version to the pending devices of ``batch``; the ids assigned.

    Each device's previous version of the model (``rows.previous_version``: where its
    latest target of that model sends it, else what it reports it runs) and that
    version's figures (the baseline of the gate) are captured first (``previous_versions``:
    for the whole batch at once).
    """
    pending = [row for row in batch if row.status == RolloutDeviceStatus.PENDING.value]
    # every device row of the batch locked in one statement, in id order
    locked = {
        d.id: d
        for d in session.exec(
            select(Device)
            .where(col(Device.id).in_(sorted(row.device_id for row in pending)))
            .order_by(col(Device.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    previous_of = previous_versions(session, list(locked.values()), rollout.model)
    with session.no_autoflush:  # the new targets are inserted together, at the commit
        assigned = _assign_each(session, rollout, pending, locked, previous_of, now)
    rollout.current_batch = index
    rollout.batch_started_at = now
    rollout.batch_done_at = None
    label = batch_label(Strategy.from_json(rollout.strategy), index, count)
    note(rollout, "batch_started", f"{label} started: {counted(len(assigned))}", now, batch=index)
    logger.info("rollout %s: %s started (%d device(s))", rollout.id, label, len(assigned))
    return assigned


def _assign_each(
    session: Session,
    rollout: Rollout,
    pending: Sequence[RolloutDevice],
    locked: Mapping[str, Device],
    previous_of: Mapping[str, ModelVersion | None],
    now: datetime,
) -> list[str]:
    """Assign each pending row's device its version (``start_batch``); the ids assigned."""
    assigned: list[str] = []
    for row in pending:
        row.updated_at = now
        session.add(row)
        device = locked.get(row.device_id)
        reason = None
        if device is None:
            reason = "device no longer registered"
        elif device.fleet != rollout.fleet:
            reason = f"device moved to fleet {device.fleet}"
        if device is None or reason is not None:
            row.status, row.reason = RolloutDeviceStatus.FAILED.value, reason
            continue
        version_id = wanted(rollout, row)
        deployment = _deployment(session, rollout, version_id, now)
        previous = previous_of.get(device.id)
        if previous is not None and (rollout.remove or previous.id != version_id):
            row.previous_model_version_id = previous.id
            if not rollout.remove:
                row.baseline = figures(device, previous.model, previous.version)
        row.started_at = now
        if assign(session, device=device, deployment=deployment) is None:
            row.status, row.reason = RolloutDeviceStatus.FAILED.value, "no higher generation left"
            continue
        row.status, row.reason = RolloutDeviceStatus.UPDATING.value, None
        assigned.append(row.device_id)
    return assigned
