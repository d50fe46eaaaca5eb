"""What the HTTP API accepts and answers (the ``XCreate`` / ``XPublic`` halves of each family)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from controlplane.rollouts.strategy_schema import STRATEGY_SCHEMA
from controlplane.selectors import LABEL_PATTERN
from protocol import NAME_PATTERN, BackendKey, FileRef, Priority, SelectionReport, ShadowFigures


def as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without tzinfo; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def _not_a_number(value: object) -> object:
    """Refuse a bare number as a time (pydantic would read it as Unix seconds)."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value)
    ):
        raise ValueError("expected an ISO 8601 time, e.g. 2026-12-05T10:00Z")
    return value


#: A time a client gives (a query's ``since``): ISO 8601 only, as documented.
IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(as_utc)]
#: Fleet names (also MQTT-safe device ids use the same alphabet).
#: Model names and versions: the alphabet of the bundle metadata (model_store), '+' allowed.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
#: Device label keys and values (``controlplane.selectors``).
LabelText = Annotated[str, StringConstraints(pattern=LABEL_PATTERN)]
#: a ``dict[LabelText, LabelText]`` takes no other keys (JSON Schema)
ONLY_LABELS: dict[str, Any] = {"additionalProperties": False}


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
    #: backends pinned for one model each, by model name (over ``pinned_backend``)
    model_pins: dict[str, str] = Field(default_factory=dict)


class PinUpdate(BaseModel):
    """``PUT /fleets/{name}/pin``, ``PUT /devices/{id}/pin``: a backend candidate key
    (``runtime:device:precision``), or null to remove the pin; with ``model``, the pin
    of that model only (over the pin for every model of the same fleet or device)."""

    backend: BackendKey | None
    model: ModelName | None = None


class PinResult(BaseModel):
    """What a pin change did: the pin now in place and the devices sent a new command."""

    fleet: str | None = None
    device: str | None = None
    #: the model the pin is for (None: every model)
    model: str | None = None
    backend: str | None
    reissued: list[str]


class ReselectRequest(BaseModel):
    """``POST /devices/{id}/reselect``: measure the backend of ``model`` again (None:
    every model the device runs)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName | None = None


class ReselectResult(BaseModel):
    """What a re-selection request did: the counter the model's commands now carry, and
    whether the device was sent a new command."""

    device: str
    model: str | None = None
    reselect: int
    reissued: list[str]


class PinPublic(BaseModel):
    """The pin a device's commands carry, whether it is the device's or its fleet's, and
    the device's answer (``controlplane.views.pin_answer``)."""

    backend: str
    source: Literal["device", "fleet"]
    #: the pin names this model (set for one model, not for every model of its scope)
    for_model: bool = False
    #: ``waiting``: the device has not processed its latest command yet; ``honoured``:
    #: it serves with the pinned backend; ``not honoured``: it processed the command and
    #: serves with another backend or nothing (``reason`` says why); None: it serves no
    #: model, so there is nothing to pin
    state: Literal["waiting", "honoured", "not honoured"] | None = None
    reason: str | None = None


class ModelSelectionPublic(SelectionReport):
    """How a device chose the backend of one active model, every candidate's figures."""

    version: str
    bundle_digest: str
    backend: str


#: Variant names of a model version (``default`` is the version's own bundle).
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
VariantName = Annotated[str, StringConstraints(pattern=VARIANT_PATTERN)]


class ModelVersionCreate(BaseModel):
    """``POST /models/{name}/versions``: a version's bundle, or with ``variant`` a further
    bundle of an existing version (``default``, or no variant, is the version's own)."""

    version: Version
    signature: FileRef
    files: list[FileRef] = Field(min_length=1)
    variant: VariantName | None = None


class ModelVariantPublic(_Public):
    """One further bundle of a model version, for the devices whose runtimes prefer it."""

    variant: str
    framework: str
    bundle_digest: str
    key_id: str | None
    signature: FileRef
    files: list[FileRef]
    metadata: dict[str, Any]
    created_at: UtcDatetime


class ModelVersionPublic(_Public):
    """A model version: its default bundle (``bundle_digest``, ``files``, ...; variant
    ``default``) and its ``variants``, oldest first."""

    model: str
    version: str
    bundle_digest: str
    key_id: str | None
    signature: FileRef
    files: list[FileRef]
    metadata: dict[str, Any]
    created_at: UtcDatetime
    framework: str = "onnx"
    variants: list[ModelVariantPublic] = Field(default_factory=list)


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


class DeviceModelPublic(BaseModel):
    """One model a device serves (``active``) or failed to install (``failed``,
    ``retrying``), with its latest heartbeat figures."""

    name: str
    version: str
    state: str
    reason: str | None = None
    backend: str | None = None
    bundle_digest: str | None = None
    deployment_id: int | None = None
    memory_bytes: int | None = None
    priority: str | None = None
    threads: int | None = None
    concurrency: int | None = None
    requests: int | None = None
    errors: int | None = None
    p95_ms: float | None = None
    #: the operator pin this model gets on the device (``controlplane.pin_rules``), with
    #: the device's answer for this model
    pin: PinPublic | None = None


class MemoryPublic(BaseModel):
    """A device's memory budget for its models, what they take, and the headroom left."""

    budget_bytes: int
    models_bytes: int
    #: budget - models, never negative (computed)
    headroom_bytes: int = 0

    @model_validator(mode="after")
    def _headroom(self) -> MemoryPublic:
        self.headroom_bytes = max(0, self.budget_bytes - self.models_bytes)
        return self


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
    #: the device's own backend pins for one model each, by model name
    model_pins: dict[str, str] = Field(default_factory=dict)
    #: the pin for every model its deployment commands carry (device pin, else fleet
    #: pin), or None; a model's own pin, if any, is that model's ``models[].pin``
    pin: PinPublic | None = None
    #: per active model name, how its backend was chosen (latest state report)
    selections: dict[str, ModelSelectionPublic] = Field(default_factory=dict)
    #: operator labels that rollout selectors match (``hw`` defaults to the profile)
    labels: dict[str, str] = Field(default_factory=dict)
    #: the hardware profile the agent matched, if it says
    profile: str | None = None
    #: the runtimes the device prefers, best first (which variant it receives)
    runtimes: list[str] = Field(default_factory=list)
    #: every model it serves or failed to install, with its figures (latest reports)
    models: list[DeviceModelPublic] = Field(default_factory=list)
    #: its memory budget for models, what they take and the headroom (None: not reported)
    memory: MemoryPublic | None = None
    #: the latest shadow period of each model (agreement, latency: latest state report)
    shadows: list[ShadowFigures] = Field(default_factory=list)

    @field_validator("shadows", mode="before")
    @classmethod
    def _no_shadows(cls, value: Any) -> Any:
        return [] if value is None else value


class LabelsUpdate(BaseModel):
    """``PATCH /devices/{id}/labels``: labels to set (or overwrite) and keys to remove."""

    model_config = ConfigDict(extra="forbid")

    set: dict[LabelText, LabelText] = Field(default_factory=dict, json_schema_extra=ONLY_LABELS)
    remove: list[LabelText] = Field(default_factory=list)


# -- rollouts ---------------------------------------------------------------------------


class RolloutCreate(BaseModel):
    """``POST /rollouts``. ``strategy``: ``controlplane.rollouts.policy.Strategy`` as JSON
    (omitted: all at once, default gate). ``undeploy``: remove ``model`` from the matching
    devices instead (``version`` omitted; no health gate)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={  # a version, or undeploy: true without one
            "oneOf": [
                {
                    "required": ["version"],
                    "properties": {"version": {"type": "string"}, "undeploy": {"const": False}},
                },
                {
                    "required": ["undeploy"],
                    "properties": {"version": {"type": "null"}, "undeploy": {"const": True}},
                },
            ]
        },
    )

    model: ModelName
    version: Version | None = None
    fleet: Name
    selector: dict[LabelText, LabelText] = Field(
        default_factory=dict, json_schema_extra=ONLY_LABELS
    )
    strategy: dict[str, Any] | None = Field(default=None, json_schema_extra=STRATEGY_SCHEMA)
    undeploy: bool = False
    #: the model's priority on these devices (wins over the bundle's ``serving.priority``)
    priority: Priority | None = None

    @model_validator(mode="after")
    def _version_unless_undeploy(self) -> RolloutCreate:
        if self.undeploy and self.version is not None:
            raise ValueError("an undeploy names no version")
        if not self.undeploy and self.version is None:
            raise ValueError("version is required (or undeploy: true)")
        return self


class RollbackRequest(BaseModel):
    """Body of ``/rollouts/{id}/rollback`` (optional): the rollback's strategy (omitted:
    all at once, default gate; ``{"gate": {"enabled": false}}``: ungated)."""

    model_config = ConfigDict(extra="forbid")

    strategy: dict[str, Any] | None = Field(default=None, json_schema_extra=STRATEGY_SCHEMA)


class RolloutAction(BaseModel):
    """Body of ``/rollouts/{id}/pause|resume|abort`` (optional): why, for the history."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class RolloutCounts(BaseModel):
    """How many devices are in each rollout device status."""

    pending: int = 0
    updating: int = 0
    retrying: int = 0
    activated: int = 0
    failed: int = 0
    regressed: int = 0
    rolled_back: int = 0
    skipped: int = 0
    total: int = 0


class ShadowBatchPublic(BaseModel):
    """A batch's shadow periods (``GET /rollouts/{id}`` only): how many of its devices
    reported one for the rollout's version, by verdict, the lowest agreement and the
    slowest shadow p99 next to the serving p99 of the same device."""

    devices: int
    running: int
    passed: int
    failed: int
    min_agreement_pct: float | None = None
    worst_shadow_p99_ms: float | None = None
    serving_p99_ms: float | None = None


class BatchPublic(BaseModel):
    index: int
    size: int
    state: Literal["pending", "running", "done", "aborted", "skipped"]
    started_at: UtcDatetime | None = None
    done_at: UtcDatetime | None = None
    counts: RolloutCounts
    #: its devices' shadow periods (None: none reported, or a list of rollouts)
    shadow: ShadowBatchPublic | None = None


class FiguresPublic(BaseModel):
    """One model version's cumulative inference figures on one device."""

    requests: int
    errors: int
    p95_ms: float | None = None


class RolloutDevicePublic(BaseModel):
    device_id: str
    batch: int
    status: str
    reason: str | None
    #: the previous version's figures when the device's batch started
    baseline: FiguresPublic | None
    #: the new version's latest figures
    observed: FiguresPublic | None
    updated_at: UtcDatetime
    #: its shadow period of the rollout's version, as the device reported it last
    shadow: ShadowFigures | None = None


class HistoryEntry(BaseModel):
    at: UtcDatetime
    event: str
    message: str
    #: who did it, for an operator's action: ``ops (operator) via edgectl``
    by: str | None = None


class AuditEntryPublic(BaseModel):
    """``GET /audit``: one recorded write (``controlplane.audit``)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: UtcDatetime
    #: the token's name and role (None: a failed dashboard sign-in)
    token_name: str | None
    role: str | None
    #: ``api`` or ``dashboard``
    source: str
    client_address: str | None
    user_agent: str | None
    action: str
    target: str
    #: the answer's HTTP status code
    status: int
    detail: dict[str, Any]


class RolloutSummary(BaseModel):
    """``GET /rollouts``: a rollout without its per-device rows."""

    id: int
    model: str
    version: str
    fleet: str
    selector: dict[str, str]
    strategy: dict[str, Any]
    state: str
    reason: str | None
    current_batch: int
    previous_version: str | None
    rollback_of: int | None
    deployment_id: int | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    counts: RolloutCounts
    batches: list[BatchPublic]
    history: list[HistoryEntry]
    #: where the strategy could not be followed as asked (``strategy adjusted: ...``)
    notes: list[str] = []
    #: how many devices a rollback would send back to their own previous version
    rollback_devices: int = 0
    #: an undeploy: the model leaves the devices (``version``: its latest, a reference)
    undeploy: bool = False
    #: the operator's priority for the model on these devices (None: the bundle's)
    priority: str | None = None


class RolloutPublic(RolloutSummary):
    """``GET /rollouts/{id}`` and every rollout action: the rollout with its devices."""

    devices: list[RolloutDevicePublic]


class BlobStored(BaseModel):
    sha256: str
    size: int
    created: bool


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    """Whether this replica can do its work: its database answers and its MQTT bridge is
    connected (``broker`` is "not used" for an app without one)."""

    ready: bool
    database: str
    broker: str


class BridgeStatus(BaseModel):
    connected: bool
    received: int
    applied: int
    malformed: int
    rejected: int
    errors: int
    #: reports not sealed by the enrolled key of the device their topic names
    unauthenticated: int = 0
    #: reports whose sequence number was already seen (replays, QoS 1 duplicates)
    replayed: int = 0
    #: reports dated beyond the allowed clock skew ahead of the control plane
    future: int = 0
    #: reports dropped because the ingest queue was full (bounded in messages and bytes)
    dropped: int = 0
    #: since this process started (issue 13.4): acknowledgements published to devices,
    #: spooled reports (events, heartbeats) stored for the first time (the devices'
    #: ``spool_acked`` add up to these), and those found lost: refused for good, or a
    #: resend too old for the replay window to tell (the devices' ``spool_lost``)
    acks_sent: int = 0
    spooled_stored: int = 0
    spooled_lost: int = 0
    #: this replica's name (its MQTT client id), the group it shares reports with (None:
    #: it gets every report), and the replica driving rollouts now (None: none holds the
    #: lease; issue 15)
    replica: str | None = None
    share_group: str | None = None
    rollout_driver: str | None = None


class HeartbeatSamplePublic(_Public):
    """One sample of a device's heartbeat history (``controlplane.history``)."""

    model: str
    version: str
    backend: str
    at: UtcDatetime
    resolution_s: int
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None


class TrustPublic(BaseModel):
    """``POST /trust``: the accepted trust document, and whether it certifies our key."""

    version: int
    expires: UtcDatetime
    roles: dict[str, list[str]]
    revoked: list[str]
    control_plane_key: str
    control_plane_key_certified: bool
    created: bool
