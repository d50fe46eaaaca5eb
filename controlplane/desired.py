"""Derive what each device should run from the database (never stored as a message).

A device's desired content is its deployment target with the highest generation: the
model version of that target's deployment, with the operator's backend pin
(``ModelAssignment.backend``: the device's pin, else its current fleet's, else None).
:mod:`controlplane.commands` wraps it in a signed deployment command (generation,
expiry, trust version) and keeps the last one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from controlplane.models import Deployment, DeploymentTarget, Device, Fleet, ModelVersion
from model_store import SIGNATURE_FILENAME
from protocol import FileRef, ModelAssignment

#: The backend pin a device's commands carry: its own, else its current fleet's, else None.
_PIN = func.coalesce(col(Device.pinned_backend), col(Fleet.pinned_backend)).label("pin")


@dataclass(frozen=True)
class Desired:
    """What one device should run: its latest deployment target and that model version."""

    device_id: str
    deployment_id: int
    target_generation: int
    assignment: ModelAssignment


def assignment(
    deployment: Deployment, version: ModelVersion, *, backend: str | None = None
) -> ModelAssignment:
    """The model assignment of a deployment; ``size`` = signature + every file; ``backend``
    the pinned backend key, if any."""
    assert deployment.id is not None
    files = [FileRef.model_validate(f) for f in version.files]
    return ModelAssignment(
        deployment_id=deployment.id,
        name=version.model,
        version=version.version,
        bundle_digest=version.bundle_digest,
        size=version.signature_size + sum(f.size for f in files),
        signature=FileRef(
            path=SIGNATURE_FILENAME, sha256=version.signature_sha256, size=version.signature_size
        ),
        files=files,
        backend=backend,
    )


def desired(session: Session, *, device_ids: Iterable[str] | None = None) -> list[Desired]:
    """What ``device_ids`` (default: every device with a deployment) should run, by id."""
    statement = (
        select(DeploymentTarget, Deployment, ModelVersion, _PIN)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .join(Device, col(Device.id) == col(DeploymentTarget.device_id))
        .join(Fleet, col(Fleet.name) == col(Device.fleet), isouter=True)
        .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
    )
    if device_ids is not None:
        statement = statement.where(col(DeploymentTarget.device_id).in_(list(device_ids)))
    found: dict[str, Desired] = {}
    for target, deployment, version, pin in session.exec(statement).all():
        if target.device_id in found or deployment.id is None:
            continue  # an older generation of a device already seen
        found[target.device_id] = Desired(
            device_id=target.device_id,
            deployment_id=deployment.id,
            target_generation=target.generation,
            assignment=assignment(deployment, version, backend=pin),
        )
    return list(found.values())
