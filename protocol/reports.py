"""What agents report to the control plane: state, deployment events, heartbeats,
availability (one pydantic model per message).

Every field is bounded (see :mod:`protocol.fields`): identifiers and names by length,
ids and counters to a signed 64-bit range, free text cut, lists capped, and each
payload to ``MAX_REPORT_BYTES``. Times must carry a timezone; the control plane also
refuses one dated ahead of its own clock (docs/controlplane.md, "Ingesting reports").
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from protocol.fields import (
    FIRST_TEMPERATURES,
    LABEL_MAX,
    MAX_ACTIVE_MODELS,
    MAX_ERROR_KINDS,
    MAX_MODEL_FIGURES,
    MAX_TEMPERATURES,
    PROTOCOL_VERSION,
    URL_MAX,
    Count,
    DeviceId,
    ErrorText,
    FleetName,
    Generation,
    HardwareFacts,
    LabelText,
    Name,
    NonNegative,
    Percent,
    ProfileName,
    ProtocolVersion,
    ReportTime,
    RowId,
    RuntimeName,
    Sha256Hex,
    WireMessage,
    utcnow,
)
from protocol.selection import SelectionReport
from protocol.shadow import ShadowFigures


class DeviceStatus(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    LOADING = "loading"
    ACTIVE = "active"
    FAILED = "failed"


class ActiveModel(WireMessage):
    name: Name
    version: Name
    bundle_digest: Sha256Hex
    backend: Name
    deployment_id: RowId | None = None
    #: how ``backend`` was chosen (None: an older agent, or no selection ran)
    selection: SelectionReport | None = None
    #: resident memory the model took when it was loaded (measured; None: not measured)
    memory_bytes: Count | None = None
    #: its share of the box: priority, CPU threads its backend runs with, and how many
    #: requests it serves at once (None: an older agent)
    priority: Name | None = None
    threads: Count | None = None
    concurrency: Count | None = None


class ModelFailure(WireMessage):
    """One model of the last generation processed that did not become active."""

    name: Name
    version: Name
    deployment_id: RowId | None = None
    reason: ErrorText
    #: the agent tries it again by itself: not an outcome yet
    retrying: bool = False


class StateReport(WireMessage):
    """Agent -> control plane, retained on ``.../state``: the device's full state.

    ``fleet`` is the fleet the agent is configured for: the control plane uses it only
    when it registers the device; afterwards the control plane's record wins (a report
    cannot move a device to another fleet). ``profile`` and ``runtimes`` (optional;
    absent from older agents) say which hardware profile the agent matched and the
    runtimes it prefers, best first; the control plane sends each device the variant of
    a model version its runtimes prefer.
    """

    protocol_version: ProtocolVersion = PROTOCOL_VERSION
    device_id: DeviceId
    fleet: FleetName
    agent_version: LabelText
    status: DeviceStatus
    generation: Generation = Field(description="highest desired-state generation processed")
    active: list[ActiveModel] = Field(default_factory=list, max_length=MAX_ACTIVE_MODELS)
    last_error: ErrorText | None = None
    local_api: Annotated[str, StringConstraints(max_length=URL_MAX)] | None = None
    hardware: HardwareFacts = Field(default_factory=dict)
    profile: ProfileName | None = Field(
        default=None,
        description="the hw_profiles profile the agent matched (None: none, or an older agent)",
    )
    runtimes: list[RuntimeName] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "runtimes the device prefers, best first (its profile's candidate order, "
            "each runtime once): which variant of a model version it receives"
        ),
    )
    retrying: bool = Field(
        default=False,
        description=(
            "the generation processed last failed for a transient reason and the agent "
            "applies it again by itself: its last_error is not final (False from older agents)"
        ),
    )
    failures: list[ModelFailure] = Field(
        default_factory=list,
        max_length=MAX_ACTIVE_MODELS,
        description=(
            "each model of the generation processed last that failed or is being retried, "
            "with its own reason (empty from older agents: last_error then covers them)"
        ),
    )
    memory_budget_bytes: Count | None = Field(
        default=None,
        description="memory the agent lets its models take in all (None: an older agent)",
    )
    memory_models_bytes: Count | None = Field(
        default=None,
        description="memory its loaded models take, measured (headroom = budget - this)",
    )
    shadows: list[ShadowFigures] = Field(
        default_factory=list,
        max_length=MAX_ACTIVE_MODELS,
        description=(
            "the latest shadow period of each model that had one (protocol.shadow): "
            "running, or its final figures and verdict (empty from older agents)"
        ),
    )
    reported_at: ReportTime = Field(default_factory=utcnow)


class EventKind(StrEnum):
    RECEIVED = "received"
    DOWNLOADED = "downloaded"
    VERIFIED = "verified"
    ACTIVATED = "activated"
    #: a step failed and the agent will try again by itself (``reason`` says what failed);
    #: not an outcome: ``failed`` is sent only when the agent gives up
    RETRYING = "retrying"
    FAILED = "failed"


class DeploymentEvent(WireMessage):
    """Agent -> control plane on ``.../events``: one step of a deployment on a device."""

    protocol_version: ProtocolVersion = PROTOCOL_VERSION
    device_id: DeviceId
    deployment_id: RowId | None
    generation: Generation
    model_name: Name
    model_version: Name
    kind: EventKind
    reason: ErrorText | None = None
    at: ReportTime = Field(default_factory=utcnow)


class DiskUsage(WireMessage):
    """The filesystem holding the agent's data directory (bytes; ``free`` is what the
    agent may use, ``percent`` is used / (used + free) as ``df`` shows it)."""

    total_bytes: Count
    used_bytes: Count
    free_bytes: Count
    percent: Percent


class Temperature(WireMessage):
    """One temperature sensor reading (``psutil.sensors_temperatures``)."""

    sensor: LabelText
    label: LabelText
    celsius: float


ErrorKindName = Annotated[str, StringConstraints(max_length=LABEL_MAX)]


class ModelMetrics(WireMessage):
    """Inference figures of one model version, cumulative since it was activated on the
    device. ``requests`` counts every answered request: successes, ``errors`` (the model
    or the server failed: what a rollout's error-rate gate counts) and ``client_errors``
    (the client's request was refused as bad: HTTP 4xx, ``invalid_input``). The latency
    percentiles are of successful requests (backend time, estimated from a histogram);
    None before one. ``errors_by_kind`` splits both error counts by kind.

    Older agents send no ``client_errors`` and count ``invalid_input`` in ``errors``:
    such a message is read with its ``errors_by_kind["invalid_input"]`` moved from
    ``errors`` to ``client_errors``."""

    name: Name
    version: Name
    backend: Name
    requests: Count
    errors: Count
    client_errors: Count = 0
    errors_by_kind: dict[ErrorKindName, Count] = Field(
        default_factory=dict, max_length=MAX_ERROR_KINDS
    )
    p50_ms: NonNegative | None = None
    p95_ms: NonNegative | None = None
    p99_ms: NonNegative | None = None

    @model_validator(mode="before")
    @classmethod
    def _older_agent(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "client_errors" in data:
            return data
        kinds, errors = data.get("errors_by_kind"), data.get("errors")
        client = kinds.get("invalid_input") if isinstance(kinds, dict) else None
        if type(client) is int and type(errors) is int and 0 < client <= errors:
            return {**data, "errors": errors - client, "client_errors": client}
        return data


class Heartbeat(WireMessage):
    """Agent -> control plane on ``.../heartbeat``: periodic host figures (psutil).

    ``disk``, ``temperatures`` and ``models`` are optional (older agents omit them).
    ``models`` has one entry per model version being served; a version that was swapped
    out or unloaded appears one more time, with its final figures, after its last request.
    """

    protocol_version: ProtocolVersion = PROTOCOL_VERSION
    device_id: DeviceId
    at: ReportTime = Field(default_factory=utcnow)
    cpu_percent: Percent
    rss_bytes: Count
    mem_total_bytes: Count
    mem_available_bytes: Count
    mem_percent: Percent
    load_avg: tuple[NonNegative, NonNegative, NonNegative]
    uptime_s: NonNegative
    disk: DiskUsage | None = None
    #: cut to the first ``MAX_TEMPERATURES`` readings (a host may have one per core)
    temperatures: Annotated[list[Temperature], FIRST_TEMPERATURES] = Field(
        default_factory=list, max_length=MAX_TEMPERATURES
    )
    models: list[ModelMetrics] = Field(default_factory=list, max_length=MAX_MODEL_FIGURES)
    #: telemetry spool: messages waiting for the broker's ack when this one was built,
    #: and those dropped unsent because the spool was full (cumulative, persisted)
    spool_pending: Count = 0
    spool_dropped: Count = 0
    #: spooled reports the control plane acknowledged as stored / as lost (cumulative,
    #: persisted; issue 13.4)
    spool_acked: Count = 0
    spool_lost: Count = 0


class Availability(WireMessage):
    """Retained on ``.../availability``; the broker publishes ``online=False`` as LWT."""

    protocol_version: ProtocolVersion = PROTOCOL_VERSION
    device_id: DeviceId
    online: bool
