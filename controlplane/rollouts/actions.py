"""Operator actions on a rollout, with the device commands they cause sent: the one path
the REST routes and the dashboard's forms take."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from controlplane.commands import CommandSigner, publish_commands
from controlplane.models import utcnow
from controlplane.publisher import DesiredStatePublisher
from controlplane.rollouts import control
from controlplane.rollouts.create import rollback
from controlplane.rollouts.policy import Strategy
from controlplane.rollouts.states import Action

__all__ = ["Action", "perform"]


def _publish(
    session: Session,
    signer: CommandSigner,
    publisher: DesiredStatePublisher,
    device_ids: Sequence[str],
) -> None:
    if device_ids:
        publish_commands(session, signer, publisher, device_ids=device_ids)


def perform(
    session: Session,
    signer: CommandSigner,
    publisher: DesiredStatePublisher,
    *,
    rollout_id: int,
    action: Action,
    reason: str | None = None,
    strategy: Strategy | None = None,
    by: str | None = None,
) -> int:
    """Do ``action`` (committed, commands published); the id of the rollout to show: the
    new one for a rollback. NotFound, Conflict (409) where the rollout's state does not
    allow ``action`` (:mod:`~controlplane.rollouts.states`); a signing
    error (503) before an abort or rollback changes anything. ``by``: who acted (the
    actor's label, e.g. ``ops (operator) via edgectl``), named in the history."""
    now = utcnow()
    if action is Action.PAUSE:
        control.pause(session, rollout_id=rollout_id, reason=reason, now=now, by=by)
        return rollout_id
    if action is Action.RESUME:
        control.resume(session, rollout_id=rollout_id, reason=reason, now=now, by=by)
        return rollout_id
    signer.check_ready(session)
    if action is Action.ABORT:
        _, changed = control.abort(session, rollout_id=rollout_id, reason=reason, now=now, by=by)
        _publish(session, signer, publisher, changed)
        return rollout_id
    created, changed = rollback(session, rollout_id=rollout_id, now=now, strategy=strategy, by=by)
    assert created.id is not None
    _publish(session, signer, publisher, changed)
    return created.id
