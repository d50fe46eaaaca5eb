"""One pydantic model per MQTT message, plus ``encode``/``decode``.

Messages are JSON objects. Unknown fields are ignored so that a newer peer can add
fields without breaking an older one; ``protocol_version`` says which contract the
sender speaks. Nothing in a desired state is trusted for integrity: the agent checks
every model byte against the operator's bundle signature (see model_store).

This module holds what the control plane sends (signed envelopes carrying desired
states and trust documents) and the topic -> message table; what agents report is in
:mod:`protocol.reports`; field types and size limits in :mod:`protocol.fields`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.errors import ProtocolError
from protocol.fields import (
    MAX_ENVELOPE_PAYLOAD,
    MAX_INT64,
    MAX_URL,
    PROTOCOL_VERSION,
    URL_PATTERN,
    DeviceId,
    Generation,
    Sha256Hex,
    WireMessage,
    utcnow,
)
from protocol.reports import Availability, DeploymentEvent, Heartbeat, StateReport
from protocol.selection import BackendKey
from protocol.shadow import ShadowSpec
from protocol.topics import TopicKind


class FileRef(WireMessage):
    """One file of a bundle: its relative path, sha256 (hex) and size in bytes.

    In a desired state these are hints used to bound downloads; the agent accepts a
    file only if its path and digest also appear in the verified bundle signature.
    ``url``, set when the control plane keeps bundles in an object store, is a short-lived
    presigned URL to download the bytes from directly; the control plane's own blob URL
    is the fallback (it expired, or the store is unreachable). Where the bytes come from
    never decides what is installed: the digests do.
    """

    path: str = Field(min_length=1, max_length=1024)
    sha256: Sha256Hex
    size: int = Field(ge=0)
    url: str | None = Field(default=None, max_length=MAX_URL, pattern=URL_PATTERN)


class Priority(StrEnum):
    """How a model shares the box with the others a device serves (highest first)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class ModelAssignment(WireMessage):
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
    #: The operator's priority for this model on the device, set per deployment; it wins
    #: over the bundle's ``serving.priority``. None: the bundle's, else ``normal``. The
    #: agent shares the box's CPU threads and request concurrency by priority
    #: (docs/agent.md, "Several models on one device").
    priority: Priority | None = None
    #: The deployment's shadow period (``protocol.shadow``): the new version runs beside
    #: the serving one on sampled live requests and is judged before it switches. None:
    #: it switches as soon as it passed the health gate (also when nothing serves yet).
    shadow: ShadowSpec | None = None
    #: The operator's re-selection counter for this model on the device (``edgectl
    #: devices reselect``): when it grows past the one the agent applied, the agent
    #: forgets its cached backend choice for the bundle and measures again (the model
    #: keeps serving until the new choice is active). 0: never asked, and then left out
    #: of the message (a command without a re-selection is byte for byte what it was).
    reselect: int = Field(default=0, ge=0, le=MAX_INT64, exclude_if=lambda v: v == 0)


class DesiredState(WireMessage):
    """What a device should run: the payload of a signed deployment command.

    ``models`` is the whole set the device should serve, one assignment per model name
    (each at its own version, backend pin and priority); a model it does not name is
    removed once every named one is active. An empty list removes every model.

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


class EnvelopeSignature(WireMessage):
    keyid: str = Field(max_length=128)
    sig: str = Field(min_length=1, max_length=4096, description="base64 DER ECDSA signature")


class SignedEnvelope(WireMessage):
    """A DSSE envelope (https://github.com/secure-systems-lab/dsse), as JSON.

    Carried retained on ``.../desired`` (a signed ``DesiredState``) and on
    ``edgefleet/v1/trust`` (the latest signed trust document). Verification lives in
    ``model_store.dsse``; this is only the wire shape.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    payload_type: str = Field(alias="payloadType", max_length=256)
    payload: str = Field(min_length=1, max_length=MAX_ENVELOPE_PAYLOAD, description="base64")
    signatures: list[EnvelopeSignature] = Field(min_length=1, max_length=16)


_BY_KIND: dict[TopicKind, type[WireMessage]] = {
    TopicKind.DESIRED: SignedEnvelope,
    TopicKind.STATE: StateReport,
    TopicKind.EVENTS: DeploymentEvent,
    TopicKind.HEARTBEAT: Heartbeat,
    TopicKind.AVAILABILITY: Availability,
}

M = TypeVar("M", bound=BaseModel)


def message_type_for(kind: TopicKind) -> type[WireMessage]:
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
