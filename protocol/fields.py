"""Field types and size limits shared by every wire message.

Every field a peer sends is bounded: identifiers by pattern and length, counters and
ids to a signed 64-bit range (what SQLite INTEGER and PostgreSQL BIGINT hold), free text
and host-supplied lists by length (cut, not refused: one long error message or one host
with many sensors must not make a whole report malformed), and whole payloads in bytes:

* ``MAX_REPORT_BYTES``: the most a device report (state, event, heartbeat, availability)
  may weigh on the wire. The control plane drops a bigger one before parsing it; the
  agent does not send one. Real reports weigh a few KiB.
* ``MAX_ENVELOPE_PAYLOAD``: the base64 payload of a signed envelope (a deployment
  command or trust document), the largest legitimate message.
* ``MAX_PACKET_BYTES``: the broker's ``max_packet_size``: room for the largest signed
  envelope, its signatures and the MQTT header. Mosquitto drops a client that sends a
  bigger packet; the tests' brokers are configured with it.

The per-field bounds are sane for real devices; a report that keeps within every one of
them can still exceed ``MAX_REPORT_BYTES`` (32 models of 64 candidates with long
reasons), and the byte bound is the one that holds then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticSerializationError, to_json

PROTOCOL_VERSION = 1

#: Device reports, in bytes on the wire (checked before JSON parsing).
MAX_REPORT_BYTES = 256 * 1024
#: The base64 payload of a ``SignedEnvelope`` (characters).
MAX_ENVELOPE_PAYLOAD = 16 * 1024 * 1024
#: The broker's ``max_packet_size``: the largest envelope plus 1 MiB of headroom.
MAX_PACKET_BYTES = MAX_ENVELOPE_PAYLOAD + 1024 * 1024
#: A download URL in a command (presigned URLs with a session token run to ~2 KiB).
MAX_URL = 8192
#: an http(s) URL in its wire form: printable ASCII, no spaces (non-ASCII is %-encoded).
#: ASCII only, so that every regex engine reads it alike (Python's, pydantic's, a fuzzer's)
URL_PATTERN = r"^https?://[!-~]+$"

#: Ids and counters: signed 64-bit on every store (SQLite INTEGER, PostgreSQL BIGINT).
MAX_INT64 = 2**63 - 1
#: Generations are the same range (kept under its own name).
MAX_GENERATION = MAX_INT64
#: Model names and versions, backend keys (the control plane's columns hold 128).
NAME_MAX = 128
#: Free text a device reports (``last_error``, an event's ``reason``): cut to this.
ERROR_TEXT_MAX = 1024
#: Short host-supplied labels (agent version, temperature sensor and label names).
LABEL_MAX = 64
#: The local API URL a device reports.
URL_MAX = 512
#: ``StateReport.hardware`` as JSON (a probe's facts weigh under 1 KiB).
MAX_HARDWARE_BYTES = 16 * 1024
#: Models a state report lists as active; model figures a heartbeat carries (the
#: versions served plus those just retired); temperature readings (cut to this).
MAX_ACTIVE_MODELS = 32
MAX_MODEL_FIGURES = 64
MAX_TEMPERATURES = 64
#: Keys of ``ModelMetrics.errors_by_kind`` (the agent has two kinds).
MAX_ERROR_KINDS = 16

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", max_length=64)]
#: Device ids and fleet names: MQTT-safe (no wildcards, no extra topic levels).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
DeviceId = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=NAME_MAX)]
FleetName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=NAME_MAX)]
Generation = Annotated[int, Field(ge=0, le=MAX_GENERATION)]
#: A counter or a size in bytes.
Count = Annotated[int, Field(ge=0, le=MAX_INT64)]
#: A database row id the control plane issued (deployment ids).
RowId = Annotated[int, Field(ge=0, le=MAX_INT64)]
ProtocolVersion = Annotated[int, Field(ge=0, le=2**31 - 1)]
#: Hardware profile names (hw_profiles: lowercase letters, digits, '-'; also a valid
#: device label value) and runtime (runner) keys such as ``onnxruntime``.
ProfileName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", max_length=63)
]
RuntimeName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", max_length=64)
]
#: A model name or version, or a backend key, as a device reports it.
Name = Annotated[str, StringConstraints(max_length=NAME_MAX)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
#: A time a device reports: must say its timezone (the control plane compares it with
#: its own clock, see docs/controlplane.md "Ingesting reports").
ReportTime = AwareDatetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def _cutter(limit: int) -> Callable[[object], object]:
    def cut(value: object) -> object:
        if isinstance(value, str) and len(value) > limit:
            return value[: limit - 1] + "…"
        return value

    return cut


def _first(limit: int) -> Callable[[object], object]:
    def first(value: object) -> object:
        return value[:limit] if isinstance(value, list) else value

    return first


#: Free text a device reports, cut to ``ERROR_TEXT_MAX`` characters (the last one "…").
ErrorText = Annotated[
    str, BeforeValidator(_cutter(ERROR_TEXT_MAX)), StringConstraints(max_length=ERROR_TEXT_MAX)
]
#: A short host-supplied label, cut to ``LABEL_MAX`` characters.
LabelText = Annotated[
    str, BeforeValidator(_cutter(LABEL_MAX)), StringConstraints(max_length=LABEL_MAX)
]
#: ``Annotated`` metadata: a longer list is cut to its first ``MAX_TEMPERATURES`` items.
FIRST_TEMPERATURES = BeforeValidator(_first(MAX_TEMPERATURES))


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(to_json(value))
    except PydanticSerializationError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if size > MAX_HARDWARE_BYTES:
        raise ValueError(f"{size} bytes of JSON, more than {MAX_HARDWARE_BYTES}")
    return value


#: A free-form JSON object of at most ``MAX_HARDWARE_BYTES`` (compact form) and 64 keys.
HardwareFacts = Annotated[dict[str, Any], Field(max_length=64), AfterValidator(_small_json)]


class WireMessage(BaseModel):
    """Base of every message: frozen, unknown fields ignored, no inf / NaN figures (JSON
    has none, and a dashboard or a health gate can't use them)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)
