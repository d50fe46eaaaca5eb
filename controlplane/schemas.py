"""What the HTTP API accepts and answers (the ``XCreate`` / ``XPublic`` halves of each family)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from protocol import NAME_PATTERN, BackendKey, FileRef, SelectionReport


def as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without tzinfo; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
#: Fleet names (also MQTT-safe device ids use the same alphabet).
#: Model names and versions: the alphabet of the bundle metadata (model_store), '+' allowed.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FleetCreate(BaseModel):
    name: Name


class FleetPublic(_Public):
    name: str
    created_at: UtcDatetime
    device_count: int = 0
    #: the backend pinned for the fleet's devices (a device's own pin wins), or None
    pinned_backend: str | None = None


class PinUpdate(BaseModel):
    """``PUT /fleets/{name}/pin``, ``PUT /devices/{id}/pin``: a backend candidate key
    (``runtime:device:precision``), or null to remove the pin."""

    backend: BackendKey | None


class PinResult(BaseModel):
    """What a pin change did: the pin now in place and the devices sent a new command."""

    fleet: str | None = None
    device: str | None = None
    backend: str | None
    reissued: list[str]


class PinPublic(BaseModel):
    """The pin a device's commands carry, and whether it is the device's or its fleet's."""

    backend: str
    source: Literal["device", "fleet"]


class ModelSelectionPublic(SelectionReport):
    """How a device chose the backend of one active model, every candidate's figures."""

    version: str
    bundle_digest: str
    backend: str


class ModelVersionCreate(BaseModel):
    version: Version
    signature: FileRef
    files: list[FileRef] = Field(min_length=1)


class ModelVersionPublic(_Public):
    model: str
    version: str
    bundle_digest: str
    key_id: str | None
    signature: FileRef
    files: list[FileRef]
    metadata: dict[str, Any]
    created_at: UtcDatetime


class ModelPublic(_Public):
    name: str
    created_at: UtcDatetime
    versions: list[ModelVersionPublic]


class DeploymentCreate(BaseModel):
    model: ModelName
    version: Version
    fleet: Name


class DeploymentCreated(_Public):
    """``POST /deployments``: ``targets`` are the device ids that were sent the version."""

    id: int
    model: str
    version: str
    fleet: str
    bundle_digest: str
    created_at: UtcDatetime
    targets: list[str]


class TargetPublic(_Public):
    device_id: str
    generation: int
    status: str
    reason: str | None
    updated_at: UtcDatetime


class DeploymentPublic(_Public):
    """``GET /deployments[/{id}]``: ``targets`` carry each device's status."""

    id: int
    model: str
    version: str
    fleet: str
    bundle_digest: str
    created_at: UtcDatetime
    targets: list[TargetPublic]
    summary: dict[str, int]


class DevicePublic(_Public):
    id: str
    fleet: str
    online: bool
    status: str
    agent_version: str | None
    active_model: str | None
    active_version: str | None
    active_bundle_digest: str | None
    backend: str | None
    generation: int
    reported_generation: int
    last_error: str | None
    local_api: str | None
    hardware: dict[str, Any]
    last_report_at: UtcDatetime | None
    last_seen_at: UtcDatetime | None
    last_heartbeat: dict[str, Any] | None
    last_heartbeat_at: UtcDatetime | None
    created_at: UtcDatetime
    #: the device's own backend pin (None: none; its fleet's may still apply, see ``pin``)
    pinned_backend: str | None = None
    #: the pin its deployment commands carry (device pin, else fleet pin), or None
    pin: PinPublic | None = None
    #: per active model name, how its backend was chosen (latest state report)
    selections: dict[str, ModelSelectionPublic] = Field(default_factory=dict)


class BlobStored(BaseModel):
    sha256: str
    size: int
    created: bool


class Health(BaseModel):
    status: str = "ok"


class BridgeStatus(BaseModel):
    connected: bool
    received: int
    applied: int
    malformed: int
    rejected: int
    errors: int


class TrustPublic(BaseModel):
    """``POST /trust``: the accepted trust document, and whether it certifies our key."""

    version: int
    expires: UtcDatetime
    roles: dict[str, list[str]]
    revoked: list[str]
    control_plane_key: str
    control_plane_key_certified: bool
    created: bool
