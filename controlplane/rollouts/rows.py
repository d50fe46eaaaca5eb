"""Reading and writing rollout rows: locking, history, figures, what a device runs.

Every change to a rollout happens under :func:`locked`: the process-wide
:data:`ROLLOUT_LOCK` (SQLite ignores ``FOR UPDATE``) plus, on PostgreSQL, a row lock on
the rollout, so an operator action and the driver (of this or another replica) never
change one rollout at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from controlplane.errors import ControlPlaneError, NotFound
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    ModelVersion,
    Rollout,
    RolloutDevice,
    TargetStatus,
)
from controlplane.rollouts import states
from controlplane.rollouts.policy import Figures, Strategy
from controlplane.schemas import as_utc

#: Serialises rollout changes in this process (the row lock serialises replicas).
ROLLOUT_LOCK = threading.RLock()

#: Rollout states in which no other rollout of the same model may start in the fleet
#: (from the table in :mod:`controlplane.rollouts.states`).
ACTIVE_STATES = states.ACTIVE_STATES


#: Seconds an operator action waits for a rollout row another replica holds (PostgreSQL).
LOCK_WAIT_S = 10.0
#: PostgreSQL's SQLSTATE for a lock_timeout that expired.
LOCK_NOT_AVAILABLE = "55P03"


class RolloutBusy(ControlPlaneError):
    """The rollout row stayed locked by another transaction past :data:`LOCK_WAIT_S` (503)."""

    status_code = 503


class InvalidStrategy(ControlPlaneError):
    """A rollout strategy that ``Strategy.from_json`` refuses (422)."""

    status_code = 422


def parse_strategy(data: Mapping[str, Any] | None) -> Strategy:
    """The strategy of a request (None: all at once, defaults); InvalidStrategy if bad."""
    try:
        return Strategy.from_json(data or {})
    except (ValueError, TypeError) as exc:
        raise InvalidStrategy(f"invalid strategy: {exc}") from exc


def lock_rollout(session: Session, rollout_id: int, *, skip_locked: bool = False) -> Rollout | None:
    """The rollout row, freshly read and locked for this transaction (PostgreSQL).

    With ``skip_locked`` a rollout another transaction holds is skipped (None): the
    driver of another replica is stepping it. Call with :data:`ROLLOUT_LOCK` held.
    """
    statement = (
        select(Rollout)
        .where(Rollout.id == rollout_id)
        .with_for_update(skip_locked=skip_locked, key_share=True)
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def bound_lock_waits(session: Session) -> None:
    """On PostgreSQL, make every lock wait of this transaction give up after
    :data:`LOCK_WAIT_S` (SQLSTATE 55P03) rather than hold this process's
    :data:`ROLLOUT_LOCK` for as long as another replica holds a row."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'")
        )


def get_locked(session: Session, rollout_id: int) -> Rollout:
    """:func:`lock_rollout`, waiting for the lock up to :data:`LOCK_WAIT_S` on PostgreSQL
    (then :class:`RolloutBusy`; later lock waits of the transaction are bounded too, see
    :func:`bound_lock_waits`); NotFound if there is no such rollout."""
    bound_lock_waits(session)
    try:
        rollout = lock_rollout(session, rollout_id)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise RolloutBusy(
            f"rollout {rollout_id} is being changed by another control plane; try again"
        ) from exc
    if rollout is None:
        raise NotFound(f"unknown rollout {rollout_id}")
    return rollout


def note(rollout: Rollout, event: str, message: str, now: datetime, **extra: Any) -> None:
    """Append ``{at, event, message, **extra}`` to the rollout's history (``extra``: e.g.
    the ``batch`` index of batch events); bump ``updated_at``."""
    entry = {"at": as_utc(now).isoformat(), "event": event, "message": message, **extra}
    rollout.history = [*rollout.history, entry]  # a new list, so the JSON column is dirty
    rollout.updated_at = now


def figures(device: Device | None, model: str, version: str) -> dict[str, Any] | None:
    """The device's latest heartbeat figures for ``model`` ``version`` as stored on a
    rollout device and judged by the gate (``{requests, errors, p95_ms}``), if it reports
    any (``heartbeat_figures`` of its ``last_heartbeat``)."""
    return heartbeat_figures(device.last_heartbeat if device else None, model, version)


def heartbeat_figures(
    heartbeat: dict[str, Any] | None, model: str, version: str
) -> dict[str, Any] | None:
    """``figures`` from a device's kept heartbeat (``Device.last_heartbeat``). A client's
    bad requests (``client_errors``) are left out of both counts: they say nothing about
    the model, so ``requests`` is what the model served and ``errors`` its model and
    server errors."""
    if not heartbeat:
        return None
    for entry in heartbeat.get("models") or ():
        if (
            isinstance(entry, dict)
            and entry.get("name") == model
            and entry.get("version") == version
        ):
            found = Figures.from_json(entry)
            if found is None:
                return None
            client = int(entry.get("client_errors") or 0)
            served = replace(found, requests=max(0, found.requests - client))
            return served.to_json()
    return None


#: Device statuses of devices that were sent a rollout's version and may still run it
#: (what a rollback sends back).
SENT = ("updating", "retrying", "activated", "failed", "regressed")


def to_roll_back(session: Session, rollout: Rollout) -> dict[str, int]:
    """Per device a rollback of ``rollout`` would move, the model version it ran before
    (its own): those sent the rollout's version, that ran another before, and whose
    latest deployment target of that model still sends that version (not rolled back by
    an abort, not superseded by a deployment of another version; an abort of a later
    rollout that sent it back to this one's version counts as this one's)."""
    rows = session.exec(
        select(RolloutDevice).where(
            RolloutDevice.rollout_id == rollout.id,
            col(RolloutDevice.status).in_(SENT),
            col(RolloutDevice.previous_model_version_id).is_not(None),
        )
    ).all()
    if not rows:
        return {}
    latest: dict[str, tuple[int, bool]] = {}
    targets = session.exec(
        select(DeploymentTarget.device_id, Deployment.model_version_id, Deployment.remove)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .where(
            col(DeploymentTarget.device_id).in_([r.device_id for r in rows]),
            ModelVersion.model == rollout.model,
        )
        .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
    )
    for device_id, version_id, remove in targets:
        latest.setdefault(device_id, (version_id, remove))
    return {
        r.device_id: r.previous_model_version_id
        for r in rows
        if r.previous_model_version_id is not None
        and latest.get(r.device_id) == (wanted(rollout, r), rollout.remove)
    }


def wanted(rollout: Rollout, row: RolloutDevice) -> int:
    """The model version id the rollout sends this device (a rollback: its own)."""
    return row.target_model_version_id or rollout.model_version_id


def previous_version(session: Session, device: Device, model: str) -> ModelVersion | None:
    """The version of ``model`` the device returns to if a rollout of it starting now is
    aborted: the version its latest target of that model asks for, unless that target
    failed; else the version of it the device reports running. A rollback still
    installing counts as where the device is going: taking what it reports would send it
    back to the version being rolled back. Other models' targets do not count."""
    found = session.exec(
        select(DeploymentTarget, ModelVersion)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .where(DeploymentTarget.device_id == device.id, ModelVersion.model == model)
        .order_by(col(DeploymentTarget.generation).desc())
        .limit(1)
    ).first()
    if found is not None and found[0].status != TargetStatus.FAILED.value:
        deployment = session.get(Deployment, found[0].deployment_id)
        # an undeploy sends the device to no version of the model
        return None if deployment is not None and deployment.remove else found[1]
    return running_version(session, device, model)


def previous_versions(
    session: Session, devices: Sequence[Device], model: str
) -> dict[str, ModelVersion | None]:
    """``previous_version`` of many devices, in two queries (their targets of ``model``
    newest first, then the versions some of them report running) instead of one or two
    per device."""
    latest: dict[str, tuple[DeploymentTarget, ModelVersion, bool]] = {}
    if devices:
        rows = session.exec(
            select(DeploymentTarget, ModelVersion, Deployment.remove)
            .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
            .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
            .where(
                col(DeploymentTarget.device_id).in_(sorted(d.id for d in devices)),
                ModelVersion.model == model,
            )
            .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
        )
        for target, version, remove in rows:
            latest.setdefault(target.device_id, (target, version, bool(remove)))
    found: dict[str, ModelVersion | None] = {}
    running: dict[str, str] = {}
    for device in devices:
        hit = latest.get(device.id)
        if hit is not None and hit[0].status != TargetStatus.FAILED.value:
            found[device.id] = None if hit[2] else hit[1]  # an undeploy: no version
        elif (reported := _reported_version(device, model)) is not None:
            running[device.id] = reported
        else:
            found[device.id] = None
    if running:
        versions = {
            v.version: v
            for v in session.exec(
                select(ModelVersion).where(
                    ModelVersion.model == model,
                    col(ModelVersion.version).in_(sorted(set(running.values()))),
                )
            )
        }
        found |= {d: versions.get(v) for d, v in running.items()}
    return found


def _reported_version(device: Device, model: str) -> str | None:
    """The version of ``model`` the device's latest state report says it runs."""
    entry = (device.selections or {}).get(model)
    version = entry.get("version") if isinstance(entry, dict) else None
    if version is None and device.active_model == model:
        version = device.active_version
    return version or None


def running_version(session: Session, device: Device, model: str) -> ModelVersion | None:
    """The version of ``model`` the device reports it runs now, if known (its latest
    state report's selections, else the first active model it reported)."""
    version = _reported_version(device, model)
    if version is None:
        return None
    statement = select(ModelVersion).where(
        ModelVersion.model == model, ModelVersion.version == version
    )
    return session.exec(statement).first()
