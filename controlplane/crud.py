"""Every database write of the control plane, as keyword-only functions.

Functions flush but commit only where they finish a unit of work (the caller's request
or ingested message). Reads that only build answers live in the routes' helpers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from controlplane.errors import Conflict, InvalidRequest, NotFound
from controlplane.models import (
    TARGET_PROGRESS,
    Deployment,
    DeploymentTarget,
    Device,
    Fleet,
    Model,
    ModelVersion,
    TargetStatus,
    utcnow,
)
from protocol import DeploymentEvent, FileRef, Heartbeat, StateReport

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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


# -- models -----------------------------------------------------------------------------


def get_model_version(session: Session, *, model: str, version: str) -> ModelVersion | None:
    statement = select(ModelVersion).where(
        ModelVersion.model == model, ModelVersion.version == version
    )
    return session.exec(statement).first()


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
        existing = ModelVersion(
            model=model,
            version=version,
            bundle_digest=bundle_digest,
            signature_sha256=signature.sha256,
            signature_size=signature.size,
            files=[f.model_dump() for f in sorted(files, key=lambda f: f.path)],
            bundle_metadata=metadata,
            key_id=key_id,
        )
        session.add(existing)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raced = get_model_version(session, model=model, version=version)
            if raced is None:
                raise
            existing = raced
        else:
            session.refresh(existing)
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


def _assign(session: Session, *, device: Device, deployment: Deployment) -> DeploymentTarget:
    """Give ``device`` a new desired generation pointing at ``deployment``."""
    device.generation = max(device.generation, device.reported_generation) + 1
    assert deployment.id is not None
    target = DeploymentTarget(
        deployment_id=deployment.id, device_id=device.id, generation=device.generation
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
        select(Device).where(Device.fleet == fleet).order_by(col(Device.id)).with_for_update()
    ).all()
    targets = [_assign(session, device=device, deployment=deployment) for device in devices]
    session.commit()
    session.refresh(deployment)
    for target in targets:
        session.refresh(target)
    return deployment, model_version, targets


def latest_deployment(session: Session, *, fleet: str) -> Deployment | None:
    statement = (
        select(Deployment).where(Deployment.fleet == fleet).order_by(col(Deployment.id).desc())
    )
    return session.exec(statement.limit(1)).first()


def get_target(session: Session, *, deployment_id: int, device_id: str) -> DeploymentTarget | None:
    statement = select(DeploymentTarget).where(
        DeploymentTarget.deployment_id == deployment_id, DeploymentTarget.device_id == device_id
    )
    return session.exec(statement).first()


# -- ingestion (device reports) ---------------------------------------------------------


def apply_state_report(
    session: Session,
    *,
    device_id: str,
    report: StateReport,
    retained: bool,
    now: datetime | None = None,
) -> tuple[Device, bool]:
    """Upsert ``device_id`` from its report; (device, True) if it was just given a deployment.

    A new device is registered (its fleet created if new). If the device's fleet has a
    deployment the device is not yet a target of, the device is assigned to it. A retained
    report replayed by the broker at subscription time does not mark the device online.
    """
    now = now or utcnow()
    get_or_create_fleet(session, name=report.fleet)
    device = session.get(Device, device_id, with_for_update=True)
    if device is None:
        device = Device(id=device_id, fleet=report.fleet)
    device.fleet = report.fleet
    if not retained:
        device.online = True
    device.status = report.status.value
    device.agent_version = report.agent_version
    first = report.active[0] if report.active else None
    device.active_model = first.name if first else None
    device.active_version = first.version if first else None
    device.active_bundle_digest = first.bundle_digest if first else None
    device.backend = first.backend if first else None
    device.reported_generation = report.generation
    device.last_error = report.last_error
    device.local_api = report.local_api
    device.hardware = dict(report.hardware)
    device.last_report_at = report.reported_at
    device.last_seen_at = now
    session.add(device)
    session.flush()
    assigned = False
    latest = latest_deployment(session, fleet=report.fleet)
    if (
        latest is not None
        and latest.id is not None
        and get_target(session, deployment_id=latest.id, device_id=device_id) is None
    ):
        _assign(session, device=device, deployment=latest)
        assigned = True
    session.commit()
    return device, assigned


def set_availability(session: Session, *, device_id: str, online: bool) -> bool:
    """Record a device's availability; False if the device is not registered yet."""
    device = session.get(Device, device_id)
    if device is None:
        return False
    device.online = online
    device.last_seen_at = utcnow() if online else device.last_seen_at
    session.add(device)
    session.commit()
    return True


def apply_event(session: Session, *, device_id: str, event: DeploymentEvent) -> bool:
    """Move a deployment target forward; False if there is no such target."""
    if event.deployment_id is None:
        return False
    target = get_target(session, deployment_id=event.deployment_id, device_id=device_id)
    if target is None:
        return False
    new = TargetStatus(event.kind.value)
    if TARGET_PROGRESS[new] >= TARGET_PROGRESS[TargetStatus(target.status)]:
        target.status = new.value
        target.reason = event.reason
        target.updated_at = utcnow()
        session.add(target)
        session.commit()
    return True


def apply_heartbeat(session: Session, *, device_id: str, heartbeat: Heartbeat) -> bool:
    """Keep a device's latest heartbeat figures; False if the device is not registered."""
    device = session.get(Device, device_id)
    if device is None:
        return False
    figures = heartbeat.model_dump(mode="json", exclude={"protocol_version", "device_id"})
    device.last_heartbeat = figures
    device.last_heartbeat_at = heartbeat.at
    device.last_seen_at = utcnow()
    session.add(device)
    session.commit()
    return True
