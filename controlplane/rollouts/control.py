"""Operator controls of a rollout: pause, resume, abort (also what a policy abort does).

Which state allows which action, and the state it leads to, is the table in
:mod:`controlplane.rollouts.states` (pause ``running -> paused``; resume ``paused ->
running``; abort ``running|paused -> aborted``). Anything else is a
:class:`~controlplane.errors.Conflict` (409). Aborting returns every device the
rollout already touched (updating, activated, regressed or failed) that ran another
version before to that version: one new ``Deployment`` per distinct previous version,
owned by the rollout; those devices end ``rolled_back``. Pending devices were never
sent the new version: they keep what they run and end ``skipped``. A device sent a
later deployment since (e.g. ``POST /deployments`` of another version) keeps it: its
row keeps its status, with the reason why it was not rolled back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from sqlmodel import Session, col, select

from controlplane.crud.catalog import assign
from controlplane.errors import Conflict
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    ModelVersion,
    Rollout,
    RolloutDevice,
)
from controlplane.rollouts import states
from controlplane.rollouts.plan import counted
from controlplane.rollouts.policy import RolloutDeviceStatus
from controlplane.rollouts.rows import ROLLOUT_LOCK, get_locked, note

logger = logging.getLogger(__name__)

#: Device statuses of devices that were sent the new version.
TOUCHED = (
    RolloutDeviceStatus.UPDATING.value,
    RolloutDeviceStatus.RETRYING.value,
    RolloutDeviceStatus.ACTIVATED.value,
    RolloutDeviceStatus.REGRESSED.value,
    RolloutDeviceStatus.FAILED.value,
)


def _check(rollout: Rollout, action: states.Action) -> states.RolloutState:
    """The state ``action`` leads ``rollout`` to; Conflict if its state does not allow it."""
    if not states.allows(rollout.state, action):
        allowed = " or ".join(s.value for s in states.states_allowing(action))
        verb = f"be {states.DONE[action]}"
        raise Conflict(
            f"rollout {rollout.id} is {rollout.state}: only a {allowed} rollout can {verb}"
        )
    return states.after(rollout.state, action)


def said(verb: str, reason: str | None, by: str | None) -> str:
    """A history message naming who acted: ``lunch; paused by ops (operator) via api``
    (``by``: the actor's label; None: "an operator")."""
    done = f"{verb} by {by or 'an operator'}"
    return f"{reason}; {done}" if reason else done


def _extra(by: str | None) -> dict[str, str]:
    return {"by": by} if by else {}


def pause(
    session: Session,
    *,
    rollout_id: int,
    reason: str | None,
    now: datetime,
    by: str | None = None,
) -> Rollout:
    """Pause a running rollout (committed): no batch starts until it is resumed.
    ``by``: who (the actor's label, for the history)."""
    with ROLLOUT_LOCK:
        rollout = get_locked(session, rollout_id)
        rollout.state = _check(rollout, states.Action.PAUSE).value
        rollout.reason = reason or said("paused", None, by)
        note(rollout, "paused", said("paused", reason, by), now, **_extra(by))
        session.add(rollout)
        session.commit()
    logger.info("rollout %s paused: %s", rollout_id, rollout.reason)
    return rollout


def resume(
    session: Session,
    *,
    rollout_id: int,
    reason: str | None,
    now: datetime,
    by: str | None = None,
) -> Rollout:
    """Resume a paused rollout (committed); regressed devices count as finished."""
    with ROLLOUT_LOCK:
        rollout = get_locked(session, rollout_id)
        rollout.state = _check(rollout, states.Action.RESUME).value
        rollout.reason = None
        note(rollout, "resumed", said("resumed", reason, by), now, **_extra(by))
        session.add(rollout)
        session.commit()
    logger.info("rollout %s resumed", rollout_id)
    return rollout


def abort(
    session: Session,
    *,
    rollout_id: int,
    reason: str | None,
    now: datetime,
    by: str | None = None,
) -> tuple[Rollout, list[str]]:
    """Abort a running or paused rollout (committed); the rolled-back device ids."""
    with ROLLOUT_LOCK:
        rollout = get_locked(session, rollout_id)
        _check(rollout, states.Action.ABORT)
        changed = abort_rollout(
            session,
            rollout,
            reason=reason or said("aborted", None, by),
            now=now,
            move=states.Action.ABORT,
            said_by=said("aborted", reason, by) if reason else None,
            by=by,
        )
        session.commit()
    return rollout, changed


def _superseding(session: Session, *, device_ids: list[str], rollout: Rollout) -> dict[str, int]:
    """Per device, the deployment of the same model it was sent after ``rollout``'s, if
    any (its latest target of that model is another deployment's): one query for all."""
    latest: dict[str, DeploymentTarget] = {}
    targets = session.exec(
        select(DeploymentTarget)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .where(
            col(DeploymentTarget.device_id).in_(device_ids),
            ModelVersion.model == rollout.model,  # other models' deployments do not count
        )
        .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
    )
    for target in targets:
        latest.setdefault(target.device_id, target)
    return {
        device_id: t.deployment_id
        for device_id, t in latest.items()
        if t.deployment_id != rollout.deployment_id
    }


def _skip_pending(session: Session, rollout: Rollout, now: datetime) -> int:
    """Mark the devices never sent the new version ``skipped``; how many."""
    rows = session.exec(
        select(RolloutDevice).where(
            RolloutDevice.rollout_id == rollout.id,
            RolloutDevice.status == RolloutDeviceStatus.PENDING.value,
        )
    ).all()
    for row in rows:
        row.status = RolloutDeviceStatus.SKIPPED.value
        row.reason = "not started: the rollout was aborted"
        row.updated_at = now
        session.add(row)
    return len(rows)


def abort_rollout(
    session: Session,
    rollout: Rollout,
    *,
    reason: str,
    now: datetime,
    move: states.Move,
    said_by: str | None = None,
    by: str | None = None,
) -> list[str]:
    """Mark ``rollout`` (locked) as ``move`` (an abort, an automatic abort or a rollback)
    leaves it and roll its touched devices back (not committed); the ids of the devices
    given their previous version. NotAllowed if its state does not allow ``move``.
    ``said_by``: the history's opening words if not ``reason`` (who aborted it, with
    the reason given); ``by``: the actor's label."""
    final = states.after(rollout.state, move)
    rows = session.exec(
        select(RolloutDevice)
        .where(
            RolloutDevice.rollout_id == rollout.id,
            col(RolloutDevice.status).in_(TOUCHED),
            col(RolloutDevice.previous_model_version_id).is_not(None),
        )
        .order_by(col(RolloutDevice.device_id))
    ).all()
    device_ids = sorted({row.device_id for row in rows})
    superseded: dict[str, int] = {}
    if rows:  # lock every device to roll back in id order, as deploying does (no deadlock)
        session.exec(
            select(Device)
            .where(col(Device.id).in_(device_ids))
            .order_by(col(Device.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
        superseded = _superseding(session, device_ids=device_ids, rollout=rollout)
    by_version: dict[int, list[RolloutDevice]] = defaultdict(list)
    for row in rows:
        assert row.previous_model_version_id is not None
        by_version[row.previous_model_version_id].append(row)
    changed: list[str] = []
    kept = 0
    for version_id, group in sorted(by_version.items()):
        todo = []
        for row in group:
            newer = superseded.get(row.device_id)
            if newer is not None:  # a later deployment replaced ours: leave that one be
                row.reason = f"not rolled back: deployment {newer} superseded the rollout"
                row.updated_at = now
                session.add(row)
                kept += 1
            elif (device := session.get(Device, row.device_id)) is not None:  # locked above
                todo.append((row, device))
        if not todo:
            continue
        version = session.get(ModelVersion, version_id)
        deployment = Deployment(
            model_version_id=version_id, fleet=rollout.fleet, rollout_id=rollout.id, created_at=now
        )
        session.add(deployment)
        session.flush()
        back = f"{version.model} {version.version}" if version else f"version {version_id}"
        for row, device in todo:
            if assign(session, device=device, deployment=deployment) is None:
                continue
            row.status = RolloutDeviceStatus.ROLLED_BACK.value
            row.reason = f"rolled back to {back}"
            row.updated_at = now
            session.add(row)
            changed.append(row.device_id)
    skipped = _skip_pending(session, rollout, now)
    rollout.state = final.value
    rollout.reason = reason
    summary = f"{said_by or reason}; {counted(len(changed))} rolled back"
    if kept:
        summary += f", {kept} kept the newer deployment they were sent since"
    if skipped:
        summary += f", {skipped} never started (skipped)"
    note(rollout, "aborted", summary, now, **_extra(by))
    session.add(rollout)
    logger.warning(
        "rollout %s aborted: %s (%d device(s) rolled back)", rollout.id, reason, len(changed)
    )
    return changed
