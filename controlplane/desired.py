"""Derive what each device should run from the database (never stored as a message).

A device's desired content is a set: for each model, its deployment target with the
highest generation among that model's deployments decides the model version, in the
variant the device's runtimes prefer (:mod:`controlplane.variant_choice`; the version's
own bundle by default), with the operator's backend pin for that model
(``ModelAssignment.backend``: :mod:`controlplane.pin_rules`, the device's pins, else its
current fleet's, a pin naming the model over one for every model; else None), and the
operator's re-selection counter for it (``ModelAssignment.reselect``: ``reselect_of``). A model
whose latest target is an undeploy (``Deployment.remove``) is left out of the set.
:mod:`controlplane.commands` wraps it in a signed deployment command (generation, expiry,
trust version) and keeps the last one."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from controlplane.crud.variants import variants_of
from controlplane.identity.tables import DeviceIdentity
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    Fleet,
    ModelVariant,
    ModelVersion,
)
from controlplane.pin_rules import Pins, reselect_of
from controlplane.variant_choice import choose_variant
from model_store import SIGNATURE_FILENAME
from protocol import FileRef, ModelAssignment, Priority, ShadowSpec

#: What a model version's own bundle is called among its variants.
DEFAULT_VARIANT = "default"


@dataclass(frozen=True)
class Bundle:
    """One variant's bundle of a model version: what an assignment names."""

    variant: str
    bundle_digest: str
    signature_sha256: str
    signature_size: int
    files: list[dict[str, Any]]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, row: ModelVersion | ModelVariant) -> Bundle:
        """The version's own bundle (variant ``default``) or one of its variants."""
        return cls(
            variant=row.variant if isinstance(row, ModelVariant) else DEFAULT_VARIANT,
            bundle_digest=row.bundle_digest,
            signature_sha256=row.signature_sha256,
            signature_size=row.signature_size,
            files=row.files,
            metadata=row.bundle_metadata,
        )

    @property
    def framework(self) -> str:
        return str(self.metadata.get("framework") or "onnx")

    @property
    def allowed_runtimes(self) -> Collection[str] | None:
        runtimes = (self.metadata.get("constraints") or {}).get("runtimes")
        return None if runtimes is None else frozenset(runtimes)


@dataclass(frozen=True)
class Desired:
    """What one device should run: for each model, its latest deployment target's
    version of that model (a set: one assignment per model name, sorted by name)."""

    device_id: str
    #: the newest deployment among the set's latest targets (the command's row points at it)
    deployment_id: int
    #: the highest generation among those targets
    target_generation: int
    assignments: list[ModelAssignment]


def assignment(
    deployment: Deployment,
    version: ModelVersion,
    *,
    backend: str | None = None,
    bundle: Bundle | None = None,
    reselect: int = 0,
) -> ModelAssignment:
    """The model assignment of a deployment; ``size`` = signature + every file; ``backend``
    the pinned backend key, if any; ``bundle`` the variant sent (default: the version's)."""
    assert deployment.id is not None
    chosen = bundle or Bundle.of(version)
    files = [FileRef.model_validate(f) for f in chosen.files]
    return ModelAssignment(
        deployment_id=deployment.id,
        name=version.model,
        version=version.version,
        bundle_digest=chosen.bundle_digest,
        size=chosen.signature_size + sum(f.size for f in files),
        signature=FileRef(
            path=SIGNATURE_FILENAME, sha256=chosen.signature_sha256, size=chosen.signature_size
        ),
        files=files,
        backend=backend,
        priority=Priority(deployment.priority) if deployment.priority else None,
        shadow=ShadowSpec.model_validate(deployment.shadow) if deployment.shadow else None,
        reselect=reselect,
    )


def _devices_of(
    session: Session, device_ids: Iterable[str]
) -> dict[str, tuple[Pins, list[str], dict[str, int]]]:
    """Each device's operator pins (its own and its current fleet's), the runtimes it
    reports and its re-selection counters, by device id: one query."""
    rows = session.exec(
        select(Device, Fleet)
        .join(Fleet, col(Fleet.name) == col(Device.fleet), isouter=True)
        .where(col(Device.id).in_(sorted(device_ids)))
    ).all()
    return {
        device.id: (
            Pins(
                device.pinned_backend,
                device.model_pins or {},
                fleet.pinned_backend if fleet is not None else None,
                (fleet.model_pins or {}) if fleet is not None else {},
            ),
            device.runtimes or [],
            device.reselects or {},
        )
        for device, fleet in rows
    }


def desired(session: Session, *, device_ids: Iterable[str] | None = None) -> list[Desired]:
    """What ``device_ids`` (default: every device with a deployment) should run, by id.

    Per device and model, the target with the highest generation among that model's
    deployments decides the model's version: a deployment of model B adds or updates B
    and never touches model A.
    """
    statement = (
        select(DeploymentTarget, Deployment, ModelVersion)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .join(Device, col(Device.id) == col(DeploymentTarget.device_id))
        .join(DeviceIdentity, col(DeviceIdentity.device_id) == col(Device.id), isouter=True)
        .where(col(DeviceIdentity.revoked_at).is_(None))  # a revoked device gets nothing
        .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
    )
    if device_ids is not None:
        statement = statement.where(col(DeploymentTarget.device_id).in_(list(device_ids)))
    latest: dict[str, dict[str, tuple[DeploymentTarget, Deployment, ModelVersion]]] = {}
    for target, deployment, version in session.exec(statement).all():
        per_model = latest.setdefault(target.device_id, {})
        if version.model not in per_model and deployment.id is not None:
            per_model[version.model] = (target, deployment, version)
    if not latest:
        return []
    devices = _devices_of(session, latest)
    version_ids = {v.id for rows in latest.values() for _, _, v in rows.values() if v.id}
    extra = variants_of(session, version_ids=version_ids)
    found: list[Desired] = []
    for device_id, per_model in latest.items():
        assignments: list[ModelAssignment] = []
        for name in sorted(per_model):
            _, deployed, model_version = per_model[name]
            if deployed.remove:  # undeployed: the model leaves the device
                continue
            pins, runtimes, reselects = devices[device_id]
            bundles = [
                Bundle.of(model_version),
                *map(Bundle.of, extra.get(model_version.id or 0, [])),
            ]
            chosen = choose_variant(runtimes, bundles)
            backend = pins.backend_for(name)
            assignments.append(
                assignment(
                    deployed,
                    model_version,
                    backend=backend,
                    bundle=chosen,
                    reselect=reselect_of(reselects, name),
                )
            )
        found.append(
            Desired(
                device_id=device_id,
                deployment_id=max(d.id or 0 for _, d, _ in per_model.values()),
                target_generation=max(t.generation for t, _, _ in per_model.values()),
                assignments=assignments,
            )
        )
    return found
