"""One pydantic model per MQTT message, plus ``encode``/``decode``.

Messages are JSON objects. Unknown fields are ignored so that a newer peer can add
fields without breaking an older one; ``protocol_version`` says which contract the
sender speaks. Nothing in a desired state is trusted for integrity: the agent checks
every model byte against the operator's bundle signature (see model_store).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from protocol.errors import ProtocolError
from protocol.selection import BackendKey, SelectionReport
from protocol.topics import TopicKind

PROTOCOL_VERSION = 1

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: Device ids and fleet names: MQTT-safe (no wildcards, no extra topic levels).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
DeviceId = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
FleetName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
#: Generations are signed 64-bit on every store (SQLite INTEGER, PostgreSQL BIGINT).
MAX_GENERATION = 2**63 - 1
Generation = Annotated[int, Field(ge=0, le=MAX_GENERATION)]
#: Hardware profile names (hw_profiles: lowercase letters, digits, '-'; also a valid
#: device label value) and runtime (runner) keys such as ``onnxruntime``.
ProfileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
RuntimeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    #: no inf / NaN figures: JSON has none, and a dashboard or a health gate can't use them
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class FileRef(_Message):
    """One file of a bundle: its relative path, sha256 (hex) and size in bytes.

    In a desired state these are hints used to bound downloads; the agent accepts a
    file only if its path and digest also appear in the verified bundle signature.
    """

    path: str = Field(min_length=1, max_length=1024)
    sha256: Sha256Hex
    size: int = Field(ge=0)


class ModelAssignment(_Message):
    """A model version a device should run, and where its bytes are.

    ``bundle_digest`` is the in-toto subject digest of the operator's bundle signature;
    ``size`` is the declared size of the whole bundle (signature + files): the agent
    never downloads more than that.
    """

    deployment_id: int
    name: str
    version: str
    bundle_digest: Sha256Hex
    size: int = Field(ge=0)
    signature: FileRef
    files: list[FileRef]
    #: The operator's pinned backend for this device (its device pin, else its fleet's),
    #: which overrides the agent's measured selection; None: the agent measures. It is
    #: part of the signed command, so only the control plane's key can set it.
    backend: BackendKey | None = None


class DesiredState(_Message):
    """What a device should run: the payload of a signed deployment command.

    It travels inside a ``SignedEnvelope`` (payload type ``DESIRED_STATE_PAYLOAD_TYPE``)
    signed by a control-plane key that the trust document certifies. The agent refuses
    another device's command, an expired one, a lower generation, or an equal generation
    with different content.
    """

    protocol_version: int = PROTOCOL_VERSION
    device_id: DeviceId
    generation: Generation
    issued_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    trust_version: int = Field(ge=1, description="trust document version the signer used")
    models: list[ModelAssignment] = Field(default_factory=list)


#: DSSE payload types: the type is covered by the signature, so a signature made for one
#: kind of document can never be replayed as another.
DESIRED_STATE_PAYLOAD_TYPE = "application/vnd.edgefleet.desired-state.v1+json"
TRUST_PAYLOAD_TYPE = "application/vnd.edgefleet.trust.v1+json"


class EnvelopeSignature(_Message):
    keyid: str = Field(max_length=128)
    sig: str = Field(min_length=1, max_length=4096, description="base64 DER ECDSA signature")


class SignedEnvelope(_Message):
    """A DSSE envelope (https://github.com/secure-systems-lab/dsse), as JSON.

    Carried retained on ``.../desired`` (a signed ``DesiredState``) and on
    ``edgefleet/v1/trust`` (the latest signed trust document). Verification lives in
    ``model_store.dsse``; this is only the wire shape.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    payload_type: str = Field(alias="payloadType", max_length=256)
    payload: str = Field(min_length=1, max_length=16 * 1024 * 1024, description="base64")
    signatures: list[EnvelopeSignature] = Field(min_length=1, max_length=16)


class DeviceStatus(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    LOADING = "loading"
    ACTIVE = "active"
    FAILED = "failed"


class ActiveModel(_Message):
    name: str
    version: str
    bundle_digest: Sha256Hex
    backend: str
    deployment_id: int | None = None
    #: how ``backend`` was chosen (None: an older agent, or no selection ran)
    selection: SelectionReport | None = None


class StateReport(_Message):
    """Agent -> control plane, retained on ``.../state``: the device's full state.

    ``profile`` and ``runtimes`` (optional; absent from older agents) say which hardware
    profile the agent matched and the runtimes it prefers, best first; the control plane
    sends each device the variant of a model version its runtimes prefer.
    """

    protocol_version: int = PROTOCOL_VERSION
    device_id: DeviceId
    fleet: FleetName
    agent_version: str
    status: DeviceStatus
    generation: Generation = Field(description="highest desired-state generation processed")
    active: list[ActiveModel] = Field(default_factory=list)
    last_error: str | None = None
    local_api: str | None = None
    hardware: dict[str, Any] = Field(default_factory=dict)
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
    reported_at: datetime = Field(default_factory=utcnow)


class EventKind(StrEnum):
    RECEIVED = "received"
    DOWNLOADED = "downloaded"
    VERIFIED = "verified"
    ACTIVATED = "activated"
    FAILED = "failed"


class DeploymentEvent(_Message):
    """Agent -> control plane on ``.../events``: one step of a deployment on a device."""

    protocol_version: int = PROTOCOL_VERSION
    device_id: DeviceId
    deployment_id: int | None
    generation: Generation
    model_name: str
    model_version: str
    kind: EventKind
    reason: str | None = None
    at: datetime = Field(default_factory=utcnow)


class DiskUsage(_Message):
    """The filesystem holding the agent's data directory (bytes; ``free`` is what the
    agent may use, ``percent`` is used / (used + free) as ``df`` shows it)."""

    total_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    free_bytes: int = Field(ge=0)
    percent: float


class Temperature(_Message):
    """One temperature sensor reading (``psutil.sensors_temperatures``)."""

    sensor: str
    label: str
    celsius: float


class ModelMetrics(_Message):
    """Inference figures of one model version, cumulative since it was activated on the
    device. ``requests`` counts successes and errors; ``errors_by_kind`` splits
    ``errors`` into ``invalid_input`` and ``inference``. The latency percentiles are of
    successful requests (backend time, estimated from a histogram); None before one."""

    name: str
    version: str
    backend: str
    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class Heartbeat(_Message):
    """Agent -> control plane on ``.../heartbeat``: periodic host figures (psutil).

    ``disk``, ``temperatures`` and ``models`` are optional (older agents omit them).
    ``models`` has one entry per model version being served; a version that was swapped
    out or unloaded appears one more time, with its final figures, after its last request.
    """

    protocol_version: int = PROTOCOL_VERSION
    device_id: DeviceId
    at: datetime = Field(default_factory=utcnow)
    cpu_percent: float
    rss_bytes: int
    mem_total_bytes: int
    mem_available_bytes: int
    mem_percent: float
    load_avg: tuple[float, float, float]
    uptime_s: float
    disk: DiskUsage | None = None
    temperatures: list[Temperature] = Field(default_factory=list)
    models: list[ModelMetrics] = Field(default_factory=list)
    #: telemetry spool: messages waiting for the broker's ack when this one was built,
    #: and those dropped unsent because the spool was full (cumulative, persisted)
    spool_pending: int = Field(default=0, ge=0)
    spool_dropped: int = Field(default=0, ge=0)


class Availability(_Message):
    """Retained on ``.../availability``; the broker publishes ``online=False`` as LWT."""

    protocol_version: int = PROTOCOL_VERSION
    device_id: DeviceId
    online: bool


_BY_KIND: dict[TopicKind, type[_Message]] = {
    TopicKind.DESIRED: SignedEnvelope,
    TopicKind.STATE: StateReport,
    TopicKind.EVENTS: DeploymentEvent,
    TopicKind.HEARTBEAT: Heartbeat,
    TopicKind.AVAILABILITY: Availability,
}

M = TypeVar("M", bound=BaseModel)


def message_type_for(kind: TopicKind) -> type[_Message]:
    """The message class carried on topics of ``kind``."""
    return _BY_KIND[kind]


def encode(message: BaseModel) -> bytes:
    """Serialise a message to its JSON wire form (field aliases, e.g. ``payloadType``)."""
    return message.model_dump_json(by_alias=True).encode("utf-8")


def _malformed(message_type: type[BaseModel], exc: ValidationError) -> ProtocolError:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
    return ProtocolError(f"malformed {message_type.__name__}: {where}: {first.get('msg')}")


def decode(message_type: type[M], payload: bytes | bytearray | str) -> M:
    """Parse a wire payload into ``message_type``; ProtocolError (one line) if malformed."""
    try:
        return message_type.model_validate_json(payload)
    except ValidationError as exc:
        raise _malformed(message_type, exc) from exc


def decode_body(message_type: type[M], body: dict[str, Any]) -> M:
    """``decode`` for a message already parsed from JSON (a sealed report's body)."""
    try:
        return message_type.model_validate(body)
    except ValidationError as exc:
        raise _malformed(message_type, exc) from exc
