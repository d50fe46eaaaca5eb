"""Creating rollouts: a new rollout, and an operator rollback (a new rollout sending
each device a rollout updated back to its own previous version).

The targets are the fleet's devices whose labels match the selector when the rollout is
created, sorted by id and cut into batches by ``policy.plan_batches``. The rollout owns
one ``Deployment`` of the new version whose targets it assigns batch by batch; the first
step runs in the same transaction, so batch 0 is assigned when the rollout is answered.
At most one rollout of a model may be running or paused in a fleet.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session, col, or_, select

from controlplane.crud.catalog import get_model_version
from controlplane.errors import Conflict, NotFound
from controlplane.models import (
    Deployment,
    Device,
    Fleet,
    Model,
    ModelVersion,
    Rollout,
    RolloutDevice,
    RolloutState,
)
from controlplane.rollouts.plan import counted
from controlplane.rollouts.policy import Strategy, plan_batches, plan_notes
from controlplane.rollouts.rows import (
    ACTIVE_STATES,
    ROLLOUT_LOCK,
    bound_lock_waits,
    get_locked,
    note,
    to_roll_back,
)
from controlplane.rollouts.states import Action, allows
from controlplane.rollouts.step import advance
from controlplane.selectors import format_selector, matches

logger = logging.getLogger(__name__)

#: The history event of each way the strategy could not be followed as asked.
ADJUSTED = "adjusted"


class NoTargets(Conflict):
    """No device of the fleet matches the selector: a rollout would do nothing (409)."""


def previous_version(session: Session, *, fleet: str, model: str, other_than: str) -> str | None:
    """The version of ``model`` (other than ``other_than``) that the fleet's latest
    settled deployment (all at once, or of a completed rollout) sent, if any."""
    statement = (
        select(ModelVersion.version)
        .select_from(Deployment)
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .join(Rollout, col(Rollout.id) == col(Deployment.rollout_id), isouter=True)
        .where(
            Deployment.fleet == fleet,
            ModelVersion.model == model,
            ModelVersion.version != other_than,
            or_(
                col(Deployment.rollout_id).is_(None),
                Rollout.state == RolloutState.COMPLETED.value,
            ),
        )
        .order_by(col(Deployment.id).desc())
        .limit(1)
    )
    return session.exec(statement).first()


def undeploy_reference(session: Session, *, model: str) -> str:
    """The version an undeploy of ``model`` refers to: its version registered last
    (NotFound for an unknown model or one without versions)."""
    version = session.exec(
        select(ModelVersion.version)
        .where(ModelVersion.model == model)
        .order_by(col(ModelVersion.id).desc())
        .limit(1)
    ).first()
    if version is None:
        raise NotFound(f"unknown model {model!r}")
    return version


def create_rollout(
    session: Session,
    *,
    model: str,
    version: str,
    fleet: str,
    selector: Mapping[str, str],
    strategy: Strategy,
    now: datetime,
    rollback_of: int | None = None,
    targets: Mapping[str, int] | None = None,
    remove: bool = False,
    priority: str | None = None,
    by: str | None = None,
) -> tuple[Rollout, list[str]]:
    """Record the rollout and start its first batch (committed); (rollout, device ids
    whose desired state changed). NotFound for an unknown fleet, model or version;
    Conflict if a rollout of ``model`` is already running or paused in ``fleet``.

    ``targets`` (a rollback): exactly these devices of the fleet, each sent the model
    version id given (its own previous version), instead of the selector's matches.

    ``by``: who asked (the actor's label), named in the history.

    ``priority``: the operator's priority for the model on these devices (None: the
    bundle's). ``remove`` (an undeploy): the model leaves the devices batch by batch; ``version``
    is only a reference to the model (:func:`undeploy_reference`), and the health gate
    is off (a removed model has no figures to judge)."""
    if remove:
        strategy = replace(strategy, gate=replace(strategy.gate, enabled=False))
    with ROLLOUT_LOCK:
        # FOR NO KEY UPDATE: serialises rollout creation per fleet without blocking the
        # key-share locks that inserting the fleet's devices takes.
        if session.get(Fleet, fleet, with_for_update={"key_share": True}) is None:
            raise NotFound(f"unknown fleet {fleet!r}")
        if session.get(Model, model) is None:
            raise NotFound(f"unknown model {model!r}")
        target = get_model_version(session, model=model, version=version)
        if target is None or target.id is None:
            raise NotFound(f"unknown version {version!r} of model {model!r}")
        active = session.exec(
            select(Rollout).where(
                Rollout.model == model,
                Rollout.fleet == fleet,
                col(Rollout.state).in_(ACTIVE_STATES),
            )
        ).first()
        if active is not None:
            raise Conflict(
                f"rollout {active.id} of {model} in fleet {fleet} is {active.state}: "
                "abort it (or let it complete) first"
            )
        devices = session.exec(select(Device).where(Device.fleet == fleet).order_by(col(Device.id)))
        if targets is None:
            ids = [d.id for d in devices if matches(d.labels or {}, selector)]
        else:
            ids = [d.id for d in devices if d.id in targets]
        if not ids:
            where = f"matches {format_selector(selector)}" if selector else "is registered"
            raise NoTargets(f"no device of fleet {fleet} {where}: nothing to roll out")
        batches = [batch for batch in plan_batches(ids, strategy) if batch]
        rollout = Rollout(
            model=model,
            version=version,
            model_version_id=target.id,
            fleet=fleet,
            selector=dict(selector),
            strategy=strategy.to_json(),
            previous_version=previous_version(
                session, fleet=fleet, model=model, other_than=version
            ),
            rollback_of=rollback_of,
            remove=remove,
            priority=priority,
            created_at=now,
            updated_at=now,
        )
        session.add(rollout)
        session.flush()
        deployment = Deployment(
            model_version_id=target.id,
            fleet=fleet,
            rollout_id=rollout.id,
            created_at=now,
            remove=remove,
            priority=priority,
            shadow=None
            if remove or strategy.shadow is None
            else strategy.shadow.spec(strategy.gate),
        )
        session.add(deployment)
        session.flush()
        rollout.deployment_id = deployment.id
        assert rollout.id is not None
        for index, batch in enumerate(batches):
            for device_id in batch:
                own = targets.get(device_id) if targets is not None else None
                session.add(
                    RolloutDevice(
                        rollout_id=rollout.id,
                        device_id=device_id,
                        batch=index,
                        updated_at=now,
                        target_model_version_id=own if own != target.id else None,
                    )
                )
        where = f" matching {format_selector(selector)}" if selector else ""
        what = f"undeploy {model} from" if remove else f"{model} {version} to"
        who = {"by": by} if by else {}
        asked = f"; created by {by}" if by else ""
        note(
            rollout,
            "created",
            f"{what} {counted(len(ids))} of fleet {fleet}{where} in "
            f"{counted(len(batches), 'batch')}{asked}",
            now,
            **who,
        )
        for line in plan_notes(len(ids), strategy, batches):
            note(rollout, ADJUSTED, f"strategy adjusted: {line}", now)
        session.flush()
        changed = advance(session, rollout, now=now)
        session.commit()
        session.refresh(rollout)
    logger.info(
        "rollout %s: %s %s to %d device(s) of fleet %s in %d batch(es)",
        rollout.id,
        model,
        version,
        len(ids),
        fleet,
        len(batches),
    )
    return rollout, changed


def rollback(
    session: Session,
    *,
    rollout_id: int,
    now: datetime,
    strategy: Strategy | None = None,
    by: str | None = None,
) -> tuple[Rollout, list[str]]:
    """A new rollout sending each device ``rollout_id`` updated back to the version it ran
    before it (:func:`~controlplane.rollouts.rows.to_roll_back`), committed; its
    ``strategy`` defaults to all at once with the default gate. Conflict for a running
    or paused rollout (abort it: that sends its devices back) and when there is nothing
    to roll back (an abort already did, or later deployments superseded it)."""
    with ROLLOUT_LOCK:
        # the fleet first, as creating a rollout locks it, then the rollout: one lock
        # order for every path (no deadlock between replicas on PostgreSQL)
        bound_lock_waits(session)
        unlocked = session.get(Rollout, rollout_id)
        if unlocked is not None:
            session.get(Fleet, unlocked.fleet, with_for_update={"key_share": True})
        source = get_locked(session, rollout_id)
        if not allows(source.state, Action.ROLLBACK):
            raise Conflict(
                f"rollout {rollout_id} is {source.state}: abort it instead (an abort sends "
                "every device it updated back to the version it ran before)"
            )
        back = to_roll_back(session, source)
        if not back:
            raise Conflict(
                f"rollout {rollout_id}: nothing to roll back (every device it updated is "
                "back on its previous version or was sent a later deployment since)"
            )
        # the rollout's own version: the one most of its devices go back to
        counts = Counter(back.values())
        main_id = max(counts, key=lambda v: (counts[v], v))
        main = session.get(ModelVersion, main_id)
        assert main is not None
        created, changed = create_rollout(
            session,
            model=main.model,
            version=main.version,
            fleet=source.fleet,
            selector=source.selector,
            strategy=strategy or Strategy(),
            now=now,
            rollback_of=rollout_id,
            targets=back,
            by=by,
        )
    return created, changed
