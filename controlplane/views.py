"""Read-side helpers: turn table rows into the API's ``XPublic`` answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session, col, select

from controlplane.errors import NotFound
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    Fleet,
    Model,
    ModelVariant,
    ModelVersion,
    TargetStatus,
)
from controlplane.pin_rules import Pins
from controlplane.schemas import (
    DeploymentCreated,
    DeploymentPublic,
    DeviceModelPublic,
    DevicePublic,
    FleetPublic,
    MemoryPublic,
    ModelPublic,
    ModelVariantPublic,
    ModelVersionPublic,
    PinPublic,
    TargetPublic,
)
from controlplane.selectors import matches
from model_store import SIGNATURE_FILENAME
from protocol import FileRef


def _signature(row: ModelVersion | ModelVariant) -> FileRef:
    return FileRef(path=SIGNATURE_FILENAME, sha256=row.signature_sha256, size=row.signature_size)


def _framework(metadata: dict[str, Any]) -> str:
    return str(metadata.get("framework") or "onnx")


def variant_public(variant: ModelVariant) -> ModelVariantPublic:
    return ModelVariantPublic(
        variant=variant.variant,
        framework=_framework(variant.bundle_metadata),
        bundle_digest=variant.bundle_digest,
        key_id=variant.key_id,
        signature=_signature(variant),
        files=[FileRef.model_validate(f) for f in variant.files],
        metadata=variant.bundle_metadata,
        created_at=variant.created_at,
    )


def version_public(
    version: ModelVersion, variants: Sequence[ModelVariant] = ()
) -> ModelVersionPublic:
    """A version with its default bundle and ``variants`` (oldest first)."""
    return ModelVersionPublic(
        model=version.model,
        version=version.version,
        bundle_digest=version.bundle_digest,
        key_id=version.key_id,
        signature=_signature(version),
        files=[FileRef.model_validate(f) for f in version.files],
        metadata=version.bundle_metadata,
        created_at=version.created_at,
        framework=_framework(version.bundle_metadata),
        variants=[variant_public(v) for v in variants],
    )


def model_public(
    model: Model,
    versions: list[ModelVersion],
    variants: Mapping[int, Sequence[ModelVariant]] | None = None,
) -> ModelPublic:
    """``variants``: each version's variants by version id (see ``crud.variants_of``)."""
    by_version = variants or {}
    return ModelPublic(
        name=model.name,
        created_at=model.created_at,
        versions=[version_public(v, by_version.get(v.id or 0, ())) for v in versions],
    )


def fleet_public(fleet: Fleet, device_count: int) -> FleetPublic:
    return FleetPublic(
        name=fleet.name,
        created_at=fleet.created_at,
        device_count=device_count,
        pinned_backend=fleet.pinned_backend,
        model_pins=fleet.model_pins or {},
    )


def pin_answer(device: Device, backend: str) -> tuple[str | None, str | None]:
    """(state, reason) of the device's answer to the pin ``backend`` (see ``PinPublic``):
    judged on its latest state report once it processed its latest command."""
    if device.reported_generation < device.generation:
        return "waiting", None
    serving = {
        str(s.get("backend")) for s in (device.selections or {}).values() if isinstance(s, dict)
    }
    if device.backend:
        serving.add(device.backend)
    if backend in serving:
        return "honoured", None
    if not serving:
        return ("not honoured", device.last_error) if device.last_error else (None, None)
    runs = f"runs {', '.join(sorted(serving))}"
    return "not honoured", f"{device.last_error} ({runs})" if device.last_error else runs


def model_pin_answer(
    device: Device, entry: Mapping[str, Any], backend: str
) -> tuple[str | None, str | None]:
    """(state, reason) of the device's answer to the pin ``backend`` of one of its models
    (``entry``: the model as the device reports it, ``Device.models``)."""
    if device.reported_generation < device.generation:
        return "waiting", None
    if entry.get("backend") == backend and entry.get("state") == "active":
        return "honoured", None
    reason = entry.get("reason")
    runs = f"runs {entry['backend']}" if entry.get("backend") else None
    return "not honoured", "; ".join(str(r) for r in (reason, runs) if r) or None


def device_public(
    device: Device, fleet_pin: str | None = None, fleet_model_pins: Mapping[str, str] | None = None
) -> DevicePublic:
    """``fleet_pin``, ``fleet_model_pins``: the device's fleet's backend pins (its own
    win over them)."""
    public = DevicePublic.model_validate(device)
    pin = None
    if device.pinned_backend:
        pin = PinPublic(backend=device.pinned_backend, source="device")
    elif fleet_pin:
        pin = PinPublic(backend=fleet_pin, source="fleet")
    if pin is not None:
        state, reason = pin_answer(device, pin.backend)
        pin = pin.model_copy(update={"state": state, "reason": reason})
    pins = Pins(device.pinned_backend, device.model_pins or {}, fleet_pin, fleet_model_pins or {})
    return public.model_copy(
        update={
            "pin": pin,
            "models": models_public(device, pins),
            "memory": memory_public(device),
        }
    )


def models_public(device: Device, pins: Pins | None = None) -> list[DeviceModelPublic]:
    """The device's models with the figures its latest heartbeat gives for that version,
    and the pin each gets (``pins``: the device's and its fleet's)."""
    figures = {
        (m.get("name"), m.get("version")): m
        for m in (device.last_heartbeat or {}).get("models") or []
        if isinstance(m, dict)
    }
    found = []
    for entry in device.models or []:
        seen = figures.get((entry.get("name"), entry.get("version"))) or {}
        pinned = pins.for_model(str(entry.get("name"))) if pins is not None else None
        pin = None
        if pinned is not None:
            state, reason = model_pin_answer(device, entry, pinned.backend)
            pin = PinPublic(
                backend=pinned.backend,
                source=pinned.source,
                for_model=pinned.for_model,
                state=state,  # type: ignore[arg-type]
                reason=reason,
            )
        found.append(
            DeviceModelPublic.model_validate(
                {
                    **entry,
                    "requests": seen.get("requests"),
                    "errors": seen.get("errors"),
                    "p95_ms": seen.get("p95_ms"),
                    "pin": pin,
                }
            )
        )
    return found


def memory_public(device: Device) -> MemoryPublic | None:
    """Budget, used and headroom (derived by ``MemoryPublic``), if the agent reports them."""
    return MemoryPublic.model_validate(device.memory) if device.memory else None


def devices_public(
    session: Session,
    *,
    device_id: str | None = None,
    fleet: str | None = None,
    selector: Mapping[str, str] | None = None,
) -> list[DevicePublic]:
    """Devices sorted by id (one, or those of a fleet and/or whose labels match
    ``selector``), each with its effective pin."""
    statement = (
        select(Device, Fleet.pinned_backend, Fleet.model_pins)
        .join(Fleet, col(Fleet.name) == col(Device.fleet), isouter=True)
        .order_by(col(Device.id))
    )
    if device_id is not None:
        statement = statement.where(Device.id == device_id)
    if fleet is not None:
        statement = statement.where(Device.fleet == fleet)
    rows = session.exec(statement).all()
    return [
        device_public(d, pin, model_pins)
        for d, pin, model_pins in rows
        if matches(d.labels or {}, selector or {})
    ]


def deployment_created(
    deployment: Deployment, version: ModelVersion, targets: list[DeploymentTarget]
) -> DeploymentCreated:
    assert deployment.id is not None
    return DeploymentCreated(
        id=deployment.id,
        model=version.model,
        version=version.version,
        fleet=deployment.fleet,
        bundle_digest=version.bundle_digest,
        created_at=deployment.created_at,
        targets=[t.device_id for t in targets],
    )


def _deployment_public(
    deployment: Deployment, version: ModelVersion, targets: list[DeploymentTarget]
) -> DeploymentPublic:
    assert deployment.id is not None
    summary = Counter(t.status for t in targets)
    return DeploymentPublic(
        id=deployment.id,
        model=version.model,
        version=version.version,
        fleet=deployment.fleet,
        bundle_digest=version.bundle_digest,
        created_at=deployment.created_at,
        targets=[TargetPublic.model_validate(t) for t in targets],
        summary={s.value: summary.get(s.value, 0) for s in TargetStatus},
    )


def list_deployments(
    session: Session, *, deployment_id: int | None = None
) -> list[DeploymentPublic]:
    statement = (
        select(Deployment, ModelVersion)
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .order_by(col(Deployment.id))
    )
    if deployment_id is not None:
        statement = statement.where(Deployment.id == deployment_id)
    rows = session.exec(statement).all()
    if not rows and deployment_id is not None:
        raise NotFound(f"unknown deployment {deployment_id}")
    ids = [d.id for d, _ in rows]
    targets: dict[int, list[DeploymentTarget]] = {}
    if ids:
        for target in session.exec(
            select(DeploymentTarget)
            .where(col(DeploymentTarget.deployment_id).in_(ids))
            .order_by(col(DeploymentTarget.device_id))
        ).all():
            targets.setdefault(target.deployment_id, []).append(target)
    return [_deployment_public(d, v, targets.get(d.id, [])) for d, v in rows if d.id is not None]
