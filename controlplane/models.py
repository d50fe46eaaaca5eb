"""SQLModel tables. The API's request/answer shapes live in :mod:`controlplane.schemas`.

Natural keys where they exist: a fleet is its name, a model is its name, a device is its
device id. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

# the rollout states live with their table of allowed moves; re-exported for the columns' users
from controlplane.rollouts.states import RolloutState as RolloutState


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(*, nullable: bool = False, **kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kwargs)


def _generation(**kwargs: Any) -> Any:
    """A generation column: signed 64-bit everywhere (``protocol.MAX_GENERATION``)."""
    return Field(sa_type=BigInteger, nullable=False, **kwargs)


class TargetStatus(StrEnum):
    """Where a deployment stands on one device (the agent's DeploymentEvent kinds + pending)."""

    PENDING = "pending"
    RECEIVED = "received"
    DOWNLOADED = "downloaded"
    VERIFIED = "verified"
    ACTIVATED = "activated"
    #: a step failed and the agent tries again by itself: not an outcome
    RETRYING = "retrying"
    FAILED = "failed"


#: Progress order: an event never moves a target backwards (QoS 1 may reorder/duplicate).
#: See :mod:`controlplane.status` for how events and state reports move a target.
TARGET_PROGRESS = {
    TargetStatus.PENDING: 0,
    TargetStatus.RECEIVED: 1,
    TargetStatus.RETRYING: 1,  # any unsettled status may move to it (controlplane.status)
    TargetStatus.DOWNLOADED: 2,
    TargetStatus.VERIFIED: 3,
    TargetStatus.ACTIVATED: 4,
    TargetStatus.FAILED: 4,
}


def _backend_key(**kwargs: Any) -> Any:
    """A backend candidate key (``runtime:device:precision``, ``protocol.BackendKey``)."""
    return Field(default=None, max_length=128, **kwargs)


class Fleet(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=128)
    created_at: datetime = _ts(default_factory=utcnow)
    #: The operator's backend pin for every device of the fleet (a device pin wins).
    pinned_backend: str | None = _backend_key()
    #: The operator's backend pins for one model each, by model name: over the fleet's
    #: ``pinned_backend`` for that model (a device's pins win over both).
    model_pins: dict[str, str] = Field(default_factory=dict, sa_type=JSON)


#: The columns a page of devices is filtered on (``controlplane.paging``): each has an
#: index ``ix_device_<column>_id`` on (column, id), so a filtered page reads in id order.
DEVICE_FILTER_COLUMNS = ("fleet", "status", "active_version", "online", "profile")


class Device(SQLModel, table=True):
    __table_args__ = tuple(Index(f"ix_device_{c}_id", c, "id") for c in DEVICE_FILTER_COLUMNS)

    id: str = Field(primary_key=True, max_length=128)
    fleet: str = Field(foreign_key="fleet.name", max_length=128)
    online: bool = False
    status: str = "unknown"
    agent_version: str | None = None
    active_model: str | None = None
    active_version: str | None = None
    active_bundle_digest: str | None = None
    backend: str | None = None
    #: Desired-state generation; only ever grows.
    generation: int = _generation(default=0)
    #: Highest generation the agent says it processed.
    reported_generation: int = _generation(default=0)
    last_error: str | None = None
    local_api: str | None = None
    hardware: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    last_report_at: datetime | None = _ts(nullable=True, default=None)
    last_seen_at: datetime | None = _ts(nullable=True, default=None)
    last_heartbeat: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    last_heartbeat_at: datetime | None = _ts(nullable=True, default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    #: The operator's backend pin for this device; it wins over its fleet's.
    pinned_backend: str | None = _backend_key()
    #: The operator's backend pins for one model each on this device, by model name: over
    #: its ``pinned_backend`` for that model (and over its fleet's pins).
    model_pins: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    #: The operator's re-selection counters (``POST /devices/{id}/reselect``), by model
    #: name, ``*`` for every model: a model's commands carry the sum of its own and
    #: ``*``'s (``ModelAssignment.reselect``); each only grows.
    reselects: dict[str, int] = Field(default_factory=dict, sa_type=JSON)
    #: How each active model's backend was chosen, by model name, from the latest state
    #: report: ``{version, bundle_digest, backend, chosen, reason, ..., candidates}``.
    selections: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    #: Operator labels (``key=value``) that rollout selectors match; ``hw`` defaults to
    #: the hardware profile the device reports.
    labels: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    #: The hw_profiles profile the agent matched (from its state report), if it says.
    profile: str | None = Field(default=None, max_length=128)
    #: Runtimes the device prefers, best first (from its state report), e.g.
    #: ``["openvino", "onnxruntime"]``: which variant of a model version it receives.
    runtimes: list[str] = Field(default_factory=list, sa_type=JSON)
    #: The id of the key the device enrolled with: only reports it sealed are believed.
    #: None: not enrolled, or revoked (``controlplane.identity``).
    key_id: str | None = Field(default=None, max_length=64)
    #: The replay window of each report stream, ``{stream: [top, seen]}``
    #: (``model_store.report_seal.ReplayWindow``), moved under this row's lock.
    report_windows: dict[str, list[int]] = Field(default_factory=dict, sa_type=JSON)
    #: Every model it serves or failed to install, from its latest state report
    #: (``controlplane.crud.device_models``).
    models: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    #: Its memory budget for models and what they take: ``{budget_bytes, models_bytes}``.
    memory: dict[str, int] | None = Field(default=None, sa_type=JSON)
    #: The latest shadow period of each model, from its latest state report
    #: (``protocol.ShadowFigures`` as JSON; None: never reported one).
    shadows: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)


class Model(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=128)
    created_at: datetime = _ts(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("model", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(foreign_key="model.name", index=True, max_length=128)
    version: str = Field(max_length=128)
    bundle_digest: str = Field(max_length=64)
    signature_sha256: str = Field(max_length=64)
    signature_size: int
    #: ``[{path, sha256, size}]`` sorted by path (the FileRefs of the bundle, no signature;
    #: never a download URL: those are signed into each command).
    files: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    #: The bundle's ``edgefleet.json`` (BundleMetadata) as stored.
    bundle_metadata: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    key_id: str | None = None
    created_at: datetime = _ts(default_factory=utcnow)


class ModelVariant(SQLModel, table=True):
    """A further bundle of one model version for other hardware (an OpenVINO IR beside
    the ONNX one, say). The ``ModelVersion`` row is the default variant; each device
    receives the variant whose runtime it prefers (``Device.runtimes``)."""

    __table_args__ = (UniqueConstraint("model_version_id", "variant"),)

    id: int | None = Field(default=None, primary_key=True)
    model_version_id: int = Field(foreign_key="modelversion.id", index=True)
    variant: str = Field(max_length=64)
    bundle_digest: str = Field(max_length=64)
    signature_sha256: str = Field(max_length=64)
    signature_size: int
    files: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    bundle_metadata: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    key_id: str | None = None
    created_at: datetime = _ts(default_factory=utcnow)


class Deployment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    model_version_id: int = Field(foreign_key="modelversion.id", index=True)
    fleet: str = Field(foreign_key="fleet.name", index=True, max_length=128)
    created_at: datetime = _ts(default_factory=utcnow)
    #: The rollout that assigns this deployment batch by batch (None: all at once, the
    #: ``/deployments`` API). A device registering later gets the fleet's latest
    #: deployment whose rollout is None or completed (and whose selector it matches).
    #: (No foreign key: ``Rollout.deployment_id`` points back, and a cycle of keys would
    #: need ALTERs at creation.)
    rollout_id: int | None = Field(default=None)
    #: An undeploy: the model of ``model_version_id`` leaves the targeted devices (the
    #: version is only a reference to the model; ``controlplane.desired`` drops it).
    remove: bool = False
    #: The operator's priority for the model on these devices (``protocol.Priority``;
    #: None: the bundle's ``serving.priority``): carried in each device's assignment.
    priority: str | None = Field(default=None, max_length=16)
    #: The shadow period each device runs the new version in before it switches
    #: (``protocol.ShadowSpec`` as JSON; None: it switches at once): carried in each
    #: device's assignment.
    shadow: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class DeploymentTarget(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("deployment_id", "device_id"),)

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    device_id: str = Field(foreign_key="device.id", index=True, max_length=128)
    generation: int = _generation()
    status: str = TargetStatus.PENDING.value
    reason: str | None = None
    updated_at: datetime = _ts(default_factory=utcnow)


class Rollout(SQLModel, table=True):
    """A model version going to the devices of a fleet (matching ``selector``) in
    batches, gated on install failures and on the inference figures devices report.

    All of its progress lives here and in ``RolloutDevice`` rows, so the driver resumes
    after a control-plane restart from the database alone."""

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(foreign_key="model.name", index=True, max_length=128)
    version: str = Field(max_length=128)
    model_version_id: int = Field(foreign_key="modelversion.id", index=True)
    fleet: str = Field(foreign_key="fleet.name", index=True, max_length=128)
    selector: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    #: ``controlplane.rollouts.policy.Strategy`` as JSON (canary, batches, waits,
    #: failure threshold, gate thresholds and action).
    strategy: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    state: str = Field(default=RolloutState.RUNNING.value, index=True, max_length=16)
    reason: str | None = None
    #: The deployment whose targets this rollout assigns.
    deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    #: The batch being installed or watched (-1 before the first starts).
    current_batch: int = -1
    batch_started_at: datetime | None = _ts(nullable=True, default=None)
    #: When the current batch was judged done (the wait before the next runs from here).
    batch_done_at: datetime | None = _ts(nullable=True, default=None)
    #: The version of this model the fleet ran before (what ``rollback`` deploys).
    previous_version: str | None = Field(default=None, max_length=128)
    #: An undeploy: the model leaves the matching devices batch by batch (``version`` is
    #: the model's version registered last, a reference only; no health gate applies).
    remove: bool = False
    #: The operator's priority for the model on the devices it reaches (None: the
    #: bundle's); every deployment of the rollout carries it.
    priority: str | None = Field(default=None, max_length=16)
    #: Set when this rollout is an operator rollback of another.
    rollback_of: int | None = Field(default=None, foreign_key="rollout.id")
    #: Decisions and operator actions, oldest first: ``[{at, event, message}]``.
    history: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class RolloutDevice(SQLModel, table=True):
    """One device's place and progress in a rollout."""

    __table_args__ = (UniqueConstraint("rollout_id", "device_id"),)

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", index=True)
    device_id: str = Field(foreign_key="device.id", index=True, max_length=128)
    batch: int
    #: ``controlplane.rollouts.policy.RolloutDeviceStatus``: pending, updating, retrying,
    #: activated, failed, regressed, rolled_back, skipped.
    status: str = Field(default="pending", max_length=16)
    reason: str | None = None
    #: The model version the device ran before this rollout (None: none), captured when
    #: its batch starts: what an abort or a rollback sends it back to.
    previous_model_version_id: int | None = Field(default=None, foreign_key="modelversion.id")
    #: The version this rollout sends the device when not the rollout's own (a rollback
    #: sends each device its own previous version). A ``modelversion`` id, without a
    #: foreign key: an older database gets the column by ``ALTER TABLE ... ADD COLUMN``
    #: (migration 0001's ``ADDED_COLUMNS``), which adds none, so a new one matches it.
    target_model_version_id: int | None = Field(default=None)
    #: Figures of the previous version when the batch started: ``{requests, errors, p95_ms}``.
    baseline: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    #: The latest figures of the new version: ``{requests, errors, p95_ms}``.
    observed: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    started_at: datetime | None = _ts(nullable=True, default=None)
    activated_at: datetime | None = _ts(nullable=True, default=None)
    #: When it first passed the health gate since it last activated (None: not yet).
    judged_at: datetime | None = _ts(nullable=True, default=None)
    updated_at: datetime = _ts(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """An operator API bearer token; only its SHA-256 is stored."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    role: str = Field(max_length=16)  # admin, operator, viewer
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    #: The first characters of the token, to tell tokens apart in listings.
    prefix: str = Field(max_length=16)
    created_at: datetime = _ts(default_factory=utcnow)
    last_used_at: datetime | None = _ts(nullable=True, default=None)
    revoked_at: datetime | None = _ts(nullable=True, default=None)


class TrustVersion(SQLModel, table=True):
    """One accepted trust document: its envelope's wire bytes, as served and published.

    The chain is re-verified from the pinned root keys at every start-up; ``created_at``
    (when it was accepted) is the time at which an older document's expiry is judged.
    """

    version: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    envelope: bytes = Field(sa_type=LargeBinary, nullable=False)
    created_at: datetime = _ts(default_factory=utcnow)


class DeviceCommand(SQLModel, table=True):
    """The last signed deployment command of a device, republished byte-identical.

    It is re-signed (with a higher generation) when its content would change: another
    deployment or backend pin, a new trust version or signing key, or less than half its
    lifetime left.
    """

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=128)
    generation: int = _generation()
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    trust_version: int = Field(sa_type=BigInteger, nullable=False)
    key_id: str = Field(max_length=64)
    expires_at: datetime = _ts()
    signed_at: datetime = _ts(default_factory=utcnow)
    #: ``protocol.encode(SignedEnvelope)``: exactly what is published on ``.../desired``.
    envelope: bytes = Field(sa_type=LargeBinary, nullable=False)
    #: The pinned backend the command carries (``ModelAssignment.backend``); a pin change
    #: makes the command stale, so it is re-signed.
    backend: str | None = _backend_key()
