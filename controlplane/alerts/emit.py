"""Alert events written in the transaction that causes them (a transactional outbox).

:func:`install` hooks SQLAlchemy's ``before_flush`` for the sessions of one engine (the
control plane's). At each flush it looks at what changed and adds an ``alertevent`` row
to the same flush, so an event exists exactly when its change commits, whichever path
made it (the rollout driver, an operator's API call or dashboard form, report ingestion):

- a ``rollout`` whose ``state`` became paused, aborted or completed (operator or policy);
- a ``rolloutdevice`` whose ``status`` became failed or regressed (the rollout's gate);
- a ``deploymenttarget`` of a deployment outside any rollout whose ``status`` became
  failed (a rollout's failures are its ``rolloutdevice`` rows, so none is sent twice).

``device.offline`` is not a change of a row: the dispatcher checks it periodically
(``controlplane.alerts.offline``).
"""

from __future__ import annotations

import logging
import weakref
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction

from controlplane.alerts.events import (
    ROLLOUT_EVENTS,
    EventType,
    device_data,
    new_event_id,
    rollout_data,
)
from controlplane.alerts.tables import AlertEvent
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    ModelVersion,
    Rollout,
    RolloutDevice,
    TargetStatus,
    utcnow,
)

logger = logging.getLogger(__name__)

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def install(engine: Engine) -> None:
    """Write alert events for the changes flushed by sessions on ``engine``."""
    _ENGINES.add(engine)
    if not event.contains(OrmSession, "before_flush", _before_flush):
        event.listen(OrmSession, "before_flush", _before_flush)


def uninstall(engine: Engine) -> None:
    _ENGINES.discard(engine)


def _changed_to(row: Any, attribute: str) -> str | None:
    """The value ``attribute`` of ``row`` was changed to in this flush, if changed."""
    history = inspect(row).attrs[attribute].history
    if not history.added:
        return None
    value = history.added[0]
    if history.deleted and history.deleted[0] == value:
        return None
    return str(value)


def _before_flush(session: OrmSession, _context: UOWTransaction, _instances: Any) -> None:
    try:
        bind = session.get_bind()
    except Exception:  # a session without a bind: nothing of ours
        return
    if bind not in _ENGINES:
        return
    queued: list[AlertEvent] = []
    with session.no_autoflush:
        dirty = list(session.dirty)
        # a device's event before its rollout's (the rollout paused *because* of it)
        for row in dirty:
            if isinstance(row, RolloutDevice):
                queued += _rollout_device(session, row)
            elif isinstance(row, DeploymentTarget):
                queued += _target(session, row)
        for row in dirty:
            if isinstance(row, Rollout):
                queued += _rollout(session, row)
    now = utcnow()
    for i, alert in enumerate(queued):  # one flush's events keep their order
        alert.at = now + timedelta(microseconds=i)
        session.add(alert)
        logger.debug("alert event %s queued", alert.type)


def _event(type_: EventType, data: dict[str, Any]) -> list[AlertEvent]:
    return [AlertEvent(id=new_event_id(), type=type_.value, data=data)]


def _rollout(session: OrmSession, rollout: Rollout) -> list[AlertEvent]:
    state = _changed_to(rollout, "state")
    type_ = ROLLOUT_EVENTS.get(state or "")
    if type_ is None or rollout.id is None:
        return []
    data = rollout_data(
        rollout_id=rollout.id,
        model=rollout.model,
        version=rollout.version,
        fleet=rollout.fleet,
        state=rollout.state,
        reason=rollout.reason,
        previous_version=rollout.previous_version,
        selector=rollout.selector or {},
        rollback_of=rollout.rollback_of,
    )
    return _event(type_, data)


def _rollout_device(session: OrmSession, row: RolloutDevice) -> list[AlertEvent]:
    status = _changed_to(row, "status")
    types = {"failed": EventType.DEVICE_FAILED, "regressed": EventType.DEVICE_REGRESSED}
    type_ = types.get(status or "")
    if type_ is None:
        return []
    rollout = session.get(Rollout, row.rollout_id)
    device = session.get(Device, row.device_id)
    data = device_data(
        device_id=row.device_id,
        fleet=device.fleet if device else (rollout.fleet if rollout else None),
        model=rollout.model if rollout else None,
        version=rollout.version if rollout else None,
        reason=row.reason,
        rollout_id=row.rollout_id,
    )
    return _event(type_, data)


def _target(session: OrmSession, target: DeploymentTarget) -> list[AlertEvent]:
    if _changed_to(target, "status") != TargetStatus.FAILED.value:
        return []
    deployment = session.get(Deployment, target.deployment_id)
    if deployment is None or deployment.rollout_id is not None:
        return []  # a rollout's device: its rolloutdevice row says it
    version = session.get(ModelVersion, deployment.model_version_id)
    data = device_data(
        device_id=target.device_id,
        fleet=deployment.fleet,
        model=version.model if version else None,
        version=version.version if version else None,
        reason=target.reason,
        deployment_id=deployment.id,
    )
    return _event(EventType.DEVICE_FAILED, data)
