"""Derive each device's desired state from the database (never stored as a message).

A device's desired state is its deployment target with the highest generation: that
target's generation, and the model version of its deployment. Deriving it makes the
MQTT side idempotent: after any loss the bridge simply republishes what this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlmodel import Session, col, select

from controlplane.models import Deployment, DeploymentTarget, ModelVersion
from controlplane.publisher import DesiredStatePublisher
from controlplane.schemas import as_utc
from model_store import SIGNATURE_FILENAME
from protocol import DesiredState, FileRef, ModelAssignment

logger = logging.getLogger(__name__)


def assignment(deployment: Deployment, version: ModelVersion) -> ModelAssignment:
    assert deployment.id is not None
    return ModelAssignment(
        deployment_id=deployment.id,
        name=version.model,
        version=version.version,
        bundle_digest=version.bundle_digest,
        signature=FileRef(
            path=SIGNATURE_FILENAME, sha256=version.signature_sha256, size=version.signature_size
        ),
        files=[FileRef.model_validate(f) for f in version.files],
    )


def desired_states(
    session: Session, *, device_ids: Iterable[str] | None = None
) -> list[DesiredState]:
    """The current desired state of ``device_ids`` (default: every device that has one)."""
    statement = (
        select(DeploymentTarget, Deployment, ModelVersion)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
    )
    if device_ids is not None:
        statement = statement.where(col(DeploymentTarget.device_id).in_(list(device_ids)))
    states: dict[str, DesiredState] = {}
    for target, deployment, version in session.exec(statement).all():
        if target.device_id in states:
            continue  # an older generation of a device already seen
        states[target.device_id] = DesiredState(
            device_id=target.device_id,
            generation=target.generation,
            issued_at=as_utc(deployment.created_at),
            models=[assignment(deployment, version)],
        )
    return list(states.values())


def publish_desired(
    session: Session, publisher: DesiredStatePublisher, *, device_ids: Iterable[str] | None = None
) -> int:
    """Publish the desired state of ``device_ids`` (default: all); how many were handed over."""
    sent = 0
    for state in desired_states(session, device_ids=device_ids):
        if publisher.publish_desired(state):
            sent += 1
    return sent
