"""Writes for fleets, models and deployments (keyword-only; see :mod:`controlplane.crud`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, and_, col, func, or_, select

from controlplane.errors import Conflict, InvalidRequest, NotFound
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    Fleet,
    Model,
    ModelVariant,
    ModelVersion,
    Rollout,
    RolloutState,
)
from controlplane.selectors import matches
from controlplane.status import generation_floor
from protocol import MAX_GENERATION, NAME_PATTERN, FileRef

logger = logging.getLogger(__name__)

_NAME = re.compile(NAME_PATTERN)
_Row = TypeVar("_Row", ModelVersion, ModelVariant)


# -- fleets -----------------------------------------------------------------------------


def get_or_create_fleet(session: Session, *, name: str) -> tuple[Fleet, bool]:
    """The fleet called ``name`` and whether it was created now (flushed, not committed)."""
    if not _NAME.match(name):
        raise InvalidRequest(f"invalid fleet name {name!r}")
    fleet = session.get(Fleet, name)
    if fleet is not None:
        return fleet, False
    try:
        with session.begin_nested():
            fleet = Fleet(name=name)
            session.add(fleet)
    except IntegrityError:  # created concurrently by another session
        existing = session.get(Fleet, name)
        if existing is None:
            raise
        return existing, False
    return fleet, True


def list_fleets(session: Session) -> list[tuple[Fleet, int]]:
    counts = dict(
        session.exec(select(Device.fleet, func.count()).group_by(col(Device.fleet))).all()
    )
    fleets = session.exec(select(Fleet).order_by(col(Fleet.name))).all()
    return [(fleet, int(counts.get(fleet.name, 0))) for fleet in fleets]


def get_fleet(session: Session, *, name: str) -> tuple[Fleet, int]:
    """The fleet ``name`` and its device count; NotFound if there is no such fleet."""
    fleet = session.get(Fleet, name)
    if fleet is None:
        raise NotFound(f"unknown fleet {name!r}")
    count = session.exec(select(func.count()).where(Device.fleet == name)).one()
    return fleet, int(count)


# -- models -----------------------------------------------------------------------------


def get_model_version(session: Session, *, model: str, version: str) -> ModelVersion | None:
    statement = select(ModelVersion).where(
        ModelVersion.model == model, ModelVersion.version == version
    )
    return session.exec(statement).first()


def bundle_columns(
    bundle_digest: str,
    signature: FileRef,
    files: Sequence[FileRef],
    metadata: dict[str, Any],
    key_id: str | None,
) -> dict[str, Any]:
    """The bundle's columns, shared by ``ModelVersion`` and ``ModelVariant`` rows."""
    return {
        "bundle_digest": bundle_digest,
        "signature_sha256": signature.sha256,
        "signature_size": signature.size,
        "files": [f.model_dump(exclude={"url"}) for f in sorted(files, key=lambda f: f.path)],
        "bundle_metadata": metadata,
        "key_id": key_id,
    }


def insert_or_get(
    session: Session, row: _Row, existing: Callable[[], _Row | None]
) -> tuple[_Row, bool]:
    """Commit ``row``: (row, True); if a concurrent session inserted the same natural key
    first, (``existing()``, False)."""
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = existing()
        if raced is None:
            raise
        return raced, False
    session.refresh(row)
    return row, True


def create_model_version(
    session: Session,
    *,
    model: str,
    version: str,
    bundle_digest: str,
    signature: FileRef,
    files: Sequence[FileRef],
    metadata: dict[str, Any],
    key_id: str | None,
) -> tuple[ModelVersion, bool]:
    """Store a verified version; (existing, False) if identical, Conflict if different."""
    existing = get_model_version(session, model=model, version=version)
    if existing is None:
        if session.get(Model, model) is None:
            session.add(Model(name=model))
        row = ModelVersion(
            model=model,
            version=version,
            **bundle_columns(bundle_digest, signature, files, metadata, key_id),
        )
        existing, created = insert_or_get(
            session, row, lambda: get_model_version(session, model=model, version=version)
        )
        if created:
            return existing, True
    if existing.bundle_digest != bundle_digest:
        raise Conflict(
            f"{model} {version} already exists with bundle digest "
            f"{existing.bundle_digest[:12]}…, not {bundle_digest[:12]}…"
        )
    return existing, False


def list_models(
    session: Session, *, name: str | None = None
) -> list[tuple[Model, list[ModelVersion]]]:
    statement = select(Model).order_by(col(Model.name))
    if name is not None:
        statement = statement.where(Model.name == name)
    out = []
    for model in session.exec(statement).all():
        versions = session.exec(
            select(ModelVersion)
            .where(ModelVersion.model == model.name)
            .order_by(col(ModelVersion.created_at), col(ModelVersion.id))
        ).all()
        out.append((model, list(versions)))
    return out


# -- deployments ------------------------------------------------------------------------


def assign(session: Session, *, device: Device, deployment: Deployment) -> DeploymentTarget | None:
    """Give ``device`` a new desired generation pointing at ``deployment`` (flushed later).

    None, logged, if the device already reported ``MAX_GENERATION``: no higher generation
    exists, so no desired state could ever supersede what it runs.
    """
    generation = generation_floor(signed=device.generation, reported=device.reported_generation) + 1
    if generation > MAX_GENERATION:
        logger.warning(
            "device %s is at the highest generation (%s); deployment %s not assigned to it",
            device.id,
            MAX_GENERATION,
            deployment.id,
        )
        return None
    device.generation = generation
    assert deployment.id is not None
    target = DeploymentTarget(
        deployment_id=deployment.id, device_id=device.id, generation=generation
    )
    session.add(device)
    session.add(target)
    return target


def create_deployment(
    session: Session, *, model: str, version: str, fleet: str
) -> tuple[Deployment, ModelVersion, list[DeploymentTarget]]:
    """Deploy ``model`` ``version`` to every device of ``fleet`` now (committed)."""
    if session.get(Fleet, fleet) is None:
        raise NotFound(f"unknown fleet {fleet!r}")
    if session.get(Model, model) is None:
        raise NotFound(f"unknown model {model!r}")
    model_version = get_model_version(session, model=model, version=version)
    if model_version is None or model_version.id is None:
        raise NotFound(f"unknown version {version!r} of model {model!r}")
    deployment = Deployment(model_version_id=model_version.id, fleet=fleet)
    session.add(deployment)
    session.flush()
    devices = session.exec(
        select(Device)
        .where(Device.fleet == fleet)
        .order_by(col(Device.id))
        .with_for_update()
        .execution_options(populate_existing=True)  # locked: read afresh, not the cached copy
    ).all()
    assigned = (assign(session, device=device, deployment=deployment) for device in devices)
    targets = [target for target in assigned if target is not None]
    session.commit()
    session.refresh(deployment)
    for target in targets:
        session.refresh(target)
    return deployment, model_version, targets


def latest_deployments(
    session: Session, *, fleet: str, labels: Mapping[str, str] | None = None
) -> list[Deployment]:
    """The fleet's latest settled deployment of each model that applies to a device with
    ``labels``, newest first.

    Settled: sent all at once (``rollout_id`` None) or by a rollout that completed (its
    own version's deployment: a rollback's others went to the devices it named); a
    running, paused or aborted rollout's deployments (and an abort's roll-backs) never
    reach a device that was not one of its targets. A rollout's deployment applies when
    ``labels`` match its selector (``labels`` None: any settled deployment).
    """
    statement = (
        select(Deployment, Rollout, ModelVersion.model)
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .join(Rollout, col(Rollout.id) == col(Deployment.rollout_id), isouter=True)
        .where(
            Deployment.fleet == fleet,
            or_(
                col(Deployment.rollout_id).is_(None),
                and_(
                    Rollout.state == RolloutState.COMPLETED.value,
                    col(Rollout.deployment_id) == col(Deployment.id),
                ),
            ),
        )
        .order_by(col(Deployment.id).desc())
    )
    found: dict[str, Deployment] = {}
    for deployment, rollout, model in session.exec(statement):
        if model in found:
            continue
        if rollout is None or labels is None or matches(labels, rollout.selector or {}):
            found[model] = deployment
    return list(found.values())


def needs_assignment(session: Session, *, device_id: str, deployment: Deployment) -> bool:
    """Whether ``device_id`` should be given ``deployment``: it is a target of no
    deployment of that fleet and of the same model at least as new (so a device a
    rollout already reached, or one rolled back by an abort, is never sent an older
    settled deployment of that model; other models' deployments do not count)."""
    model = session.exec(
        select(ModelVersion.model).where(ModelVersion.id == deployment.model_version_id)
    ).first()
    statement = (
        select(DeploymentTarget.id)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .where(
            DeploymentTarget.device_id == device_id,
            Deployment.fleet == deployment.fleet,
            ModelVersion.model == model,
            col(Deployment.id) >= deployment.id,
        )
    )
    return session.exec(statement.limit(1)).first() is None


def get_target(
    session: Session, *, deployment_id: int, device_id: str, lock: bool = False
) -> DeploymentTarget | None:
    """One device's target of a deployment (``lock``: read afresh and locked, to update)."""
    statement = select(DeploymentTarget).where(
        DeploymentTarget.deployment_id == deployment_id, DeploymentTarget.device_id == device_id
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.exec(statement).first()
