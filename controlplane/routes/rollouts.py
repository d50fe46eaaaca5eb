"""``/rollouts``: a model version to a fleet's matching devices in gated batches, and
the operator controls (pause, resume, abort, rollback).

Thin: the work is in :mod:`controlplane.rollouts`; a route publishes the signed commands
of the devices a change assigned, after it committed.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlmodel import Session

from controlplane.auth.dependency import ActorDep
from controlplane.commands import CommandSigner, publish_commands
from controlplane.deps import PublisherDep, RowId, SessionDep, SignerDep, StoreDep
from controlplane.models import RolloutState, utcnow
from controlplane.pipelines import check_rollout_steps
from controlplane.publisher import DesiredStatePublisher
from controlplane.rollouts.actions import perform
from controlplane.rollouts.create import create_rollout, undeploy_reference
from controlplane.rollouts.public import list_rollouts, rollout_public
from controlplane.rollouts.rows import parse_strategy
from controlplane.rollouts.states import Action
from controlplane.schemas import (
    RollbackRequest,
    RolloutAction,
    RolloutCreate,
    RolloutPublic,
    RolloutSummary,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/rollouts", tags=["rollouts"])

#: The optional ``{"reason": "..."}`` body of pause, resume and abort.
ActionBody = Annotated[RolloutAction | None, Body()]

_Responses = dict[int | str, dict[str, Any]]
_UNKNOWN: _Responses = {404: {"description": "unknown rollout"}}
#: The rollout's state does not allow the action (:mod:`controlplane.rollouts.states`).
_TRANSITION: _Responses = {409: {"description": "not allowed in the rollout's state"}}
_SIGNING: _Responses = {
    503: {"description": "the trust document does not certify this control plane's key"}
}


def _act(
    session: Session,
    signer: CommandSigner,
    publisher: DesiredStatePublisher,
    rollout_id: int,
    action: Action,
    body: RolloutAction | None,
    actor: ActorDep,
) -> RolloutPublic:
    reason = body.reason if body is not None else None
    by = actor.label if actor is not None else None
    perform(session, signer, publisher, rollout_id=rollout_id, action=action, reason=reason, by=by)
    return rollout_public(session, rollout_id)


@router.post(
    "",
    status_code=201,
    responses={
        404: {"description": "unknown model, version or fleet"},
        409: {
            "description": "a rollout of this model is already running or paused in the "
            "fleet, or a pipeline step's model version is not registered"
        },
        422: {"description": "invalid selector or strategy"},
        **_SIGNING,
    },
)
def create(
    body: RolloutCreate,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
    store: StoreDep,
    actor: ActorDep,
) -> RolloutPublic:
    """Start a rollout; its first batch is assigned (and sent) before this answers. A
    pipeline whose step model versions are not all registered is refused (409)."""
    signer.check_ready(session)
    strategy = parse_strategy(body.strategy)
    if body.undeploy:
        version = undeploy_reference(session, model=body.model)
    else:
        assert body.version is not None
        version = body.version
        check_rollout_steps(session, store, model=body.model, version=version)
    rollout, changed = create_rollout(
        session,
        model=body.model,
        version=version,
        fleet=body.fleet,
        selector=body.selector,
        strategy=strategy,
        now=utcnow(),
        remove=body.undeploy,
        priority=body.priority.value if body.priority else None,
        by=actor.label if actor is not None else None,
    )
    assert rollout.id is not None
    if changed:
        publish_commands(session, signer, publisher, device_ids=changed)
    return rollout_public(session, rollout.id)


@router.get("")
def get_rollouts(
    session: SessionDep, fleet: str | None = None, state: RolloutState | None = None
) -> list[RolloutSummary]:
    return list_rollouts(session, fleet=fleet, state=state.value if state else None)


@router.get("/{rollout_id}", responses=_UNKNOWN)
def get_rollout(rollout_id: RowId, session: SessionDep) -> RolloutPublic:
    return rollout_public(session, rollout_id)


@router.post("/{rollout_id}/pause", responses={**_UNKNOWN, **_TRANSITION})
def pause(
    rollout_id: RowId,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
    actor: ActorDep,
    body: ActionBody = None,
) -> RolloutPublic:
    """Stop starting batches (devices already sent the version carry on installing)."""
    return _act(session, signer, publisher, rollout_id, Action.PAUSE, body, actor)


@router.post("/{rollout_id}/resume", responses={**_UNKNOWN, **_TRANSITION})
def resume(
    rollout_id: RowId,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
    actor: ActorDep,
    body: ActionBody = None,
) -> RolloutPublic:
    """Carry on a paused rollout (a device a gate judged regressed counts as finished)."""
    return _act(session, signer, publisher, rollout_id, Action.RESUME, body, actor)


@router.post("/{rollout_id}/abort", responses={**_UNKNOWN, **_TRANSITION, **_SIGNING})
def abort(
    rollout_id: RowId,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
    actor: ActorDep,
    body: ActionBody = None,
) -> RolloutPublic:
    """Abort: every device already sent the new version returns to its previous one."""
    return _act(session, signer, publisher, rollout_id, Action.ABORT, body, actor)


@router.post(
    "/{rollout_id}/rollback",
    status_code=201,
    responses={
        **_UNKNOWN,
        409: {
            "description": "running or paused (abort it), nothing to roll back, or another "
            "rollout of the model is active"
        },
        422: {"description": "an invalid strategy"},
        **_SIGNING,
    },
)
def roll_back(
    rollout_id: RowId,
    session: SessionDep,
    publisher: PublisherDep,
    signer: SignerDep,
    actor: ActorDep,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> RolloutPublic:
    """A new rollout sending each device the rollout updated back to the version it ran
    before it; gated like any rollout (all at once, default gate) unless the strategy
    says otherwise."""
    strategy = parse_strategy(body.strategy) if body is not None and body.strategy else None
    created = perform(
        session,
        signer,
        publisher,
        rollout_id=rollout_id,
        action=Action.ROLLBACK,
        strategy=strategy,
        by=actor.label if actor is not None else None,
    )
    return rollout_public(session, created)
