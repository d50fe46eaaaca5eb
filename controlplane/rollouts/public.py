"""Read side of rollouts: rows turned into ``RolloutPublic`` / ``RolloutSummary`` answers.

A batch is ``done`` once the driver judged it done (every batch before the current one,
and the current one after ``batch_done_at``), ``running`` while it is the current one,
``pending`` before it starts; the current one of an aborted rollout, not done, is
``aborted``, and those it never started are ``skipped``. Its start and end times come
from the history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Literal

from sqlmodel import Session, col, select

from controlplane.errors import NotFound
from controlplane.models import Rollout, RolloutDevice, RolloutState
from controlplane.rollouts.rows import to_roll_back
from controlplane.rollouts.shadow_view import device_shadows, with_shadows
from controlplane.rollouts.states import Action, allows
from controlplane.schemas import (
    BatchPublic,
    FiguresPublic,
    HistoryEntry,
    RolloutCounts,
    RolloutDevicePublic,
    RolloutPublic,
    RolloutSummary,
)
from protocol import ShadowFigures


def counts(rows: Sequence[RolloutDevice]) -> RolloutCounts:
    found = Counter(row.status for row in rows)
    return RolloutCounts(**{status: n for status, n in found.items()}, total=len(rows))


BatchState = Literal["pending", "running", "done", "aborted", "skipped"]


def _batch_state(rollout: Rollout, index: int) -> BatchState:
    if index < rollout.current_batch:
        return "done"
    if index == rollout.current_batch:
        done = rollout.batch_done_at is not None or rollout.state == RolloutState.COMPLETED
        if done:
            return "done"
        return "aborted" if rollout.state == RolloutState.ABORTED else "running"
    return "skipped" if rollout.state == RolloutState.ABORTED else "pending"


_UNSTARTED = ("pending", "skipped")


def batches(rollout: Rollout, rows: Sequence[RolloutDevice]) -> list[BatchPublic]:
    by_batch: dict[int, list[RolloutDevice]] = defaultdict(list)
    for row in rows:
        by_batch[row.batch].append(row)
    started: dict[int, str] = {}
    done: dict[int, str] = {}
    for entry in rollout.history:
        index = entry.get("batch")
        if not isinstance(index, int):
            continue
        if entry.get("event") == "batch_started":
            started[index] = entry["at"]
            done.pop(index, None)
        elif entry.get("event") == "batch_done":
            done[index] = entry["at"]
    out = []
    for index in sorted(by_batch):
        state = _batch_state(rollout, index)
        out.append(
            BatchPublic.model_validate(
                {
                    "index": index,
                    "size": len(by_batch[index]),
                    "state": state,
                    "started_at": started.get(index) if state not in _UNSTARTED else None,
                    "done_at": done.get(index) if state == "done" else None,
                    "counts": counts(by_batch[index]),
                }
            )
        )
    return out


def _device(row: RolloutDevice, shadow: ShadowFigures | None = None) -> RolloutDevicePublic:
    return RolloutDevicePublic(
        device_id=row.device_id,
        batch=row.batch,
        status=row.status,
        reason=row.reason,
        baseline=FiguresPublic.model_validate(row.baseline) if row.baseline else None,
        observed=FiguresPublic.model_validate(row.observed) if row.observed else None,
        updated_at=row.updated_at,
        shadow=shadow,
    )


def _summary(rollout: Rollout, rows: Sequence[RolloutDevice]) -> RolloutSummary:
    assert rollout.id is not None
    return RolloutSummary(
        id=rollout.id,
        model=rollout.model,
        version=rollout.version,
        fleet=rollout.fleet,
        selector=rollout.selector,
        strategy=rollout.strategy,
        state=rollout.state,
        reason=rollout.reason,
        current_batch=rollout.current_batch,
        previous_version=rollout.previous_version,
        undeploy=rollout.remove,
        priority=rollout.priority,
        rollback_of=rollout.rollback_of,
        deployment_id=rollout.deployment_id,
        created_at=rollout.created_at,
        updated_at=rollout.updated_at,
        counts=counts(rows),
        batches=batches(rollout, rows),
        history=[HistoryEntry.model_validate(entry) for entry in rollout.history],
        notes=[
            str(entry.get("message"))
            for entry in rollout.history
            if entry.get("event") == "adjusted"
        ],
    )


def _rows(session: Session, rollout_ids: Sequence[int]) -> dict[int, list[RolloutDevice]]:
    found: dict[int, list[RolloutDevice]] = defaultdict(list)
    if rollout_ids:
        statement = (
            select(RolloutDevice)
            .where(col(RolloutDevice.rollout_id).in_(list(rollout_ids)))
            .order_by(col(RolloutDevice.batch), col(RolloutDevice.device_id))
        )
        for row in session.exec(statement).all():
            found[row.rollout_id].append(row)
    return found


def _rollback_devices(session: Session, rollout: Rollout) -> int:
    """How many devices a rollback would move (0 while running or paused: abort it)."""
    if not allows(rollout.state, Action.ROLLBACK):
        return 0
    return len(to_roll_back(session, rollout))


def rollout_public(session: Session, rollout_id: int) -> RolloutPublic:
    """Rollout ``rollout_id`` with its devices; NotFound if there is none."""
    rollout = session.get(Rollout, rollout_id, populate_existing=True)
    if rollout is None:
        raise NotFound(f"unknown rollout {rollout_id}")
    rows = _rows(session, [rollout_id])[rollout_id]
    shadows = device_shadows(session, rollout, rows)
    summary = _summary(rollout, rows)
    summary = summary.model_copy(
        update={
            "rollback_devices": _rollback_devices(session, rollout),
            "batches": with_shadows(summary.batches, rows, shadows),
        }
    )
    devices = [_device(row, shadows.get(row.device_id)) for row in rows]
    return RolloutPublic(**dict(summary), devices=devices)


def list_rollouts(
    session: Session,
    *,
    fleet: str | None = None,
    state: str | None = None,
    newest: int | None = None,
) -> list[RolloutSummary]:
    """Rollouts, oldest first, optionally of one fleet and/or in one state (with
    ``newest``, only that many of the latest)."""
    statement = select(Rollout)
    if fleet is not None:
        statement = statement.where(Rollout.fleet == fleet)
    if state is not None:
        statement = statement.where(Rollout.state == state)
    if newest is not None:
        statement = statement.order_by(col(Rollout.id).desc()).limit(newest)
    rollouts = sorted(session.exec(statement).all(), key=lambda r: r.id or 0)
    rows = _rows(session, [r.id for r in rollouts if r.id is not None])
    return [
        _summary(r, rows.get(r.id or -1, [])).model_copy(
            update={"rollback_devices": _rollback_devices(session, r)}
        )
        for r in rollouts
    ]
