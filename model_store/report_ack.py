"""Report acknowledgements: the control plane tells a device which of its sealed reports
it has stored, so the device's spool may forget them (issue 13.4).

An ack is a DSSE envelope (``protocol.SignedEnvelope``, payload type
``ACK_PAYLOAD_TYPE``) MACed with the device's report key (``model_store.report_key``),
which only the device and the control plane hold: a client on an open broker cannot
make a device drop its spool. The MAC covers the DSSE pre-authentication encoding of::

    {"device": ID, "lost": [[A, B], ...], "sent_at": "...Z", "stored": [[A, B], ...]}

``stored`` and ``lost`` are inclusive ranges of the report sequence numbers
(``model_store.report_seal``: ``seq``, one counter per device): ``stored`` the control
plane committed (or had committed before: a resend its replay window knows), ``lost``
the ones it can no longer tell (a resend too old for the replay window), which the
device then counts as lost. The payload type differs from a report's, so an ack can
never pass for a report nor the reverse. A replayed ack is harmless: sequence numbers
are never reused, so it names reports the device already forgot.

HMAC only: this module must not import ``cryptography`` (the agent opens every ack in
its long-lived process; issue 18).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from model_store import dsse_codec
from model_store.errors import SignatureError
from model_store.report_key import ReportKey
from model_store.report_seal import MAX_SEQ, format_time
from protocol import ProtocolError, validate_device_id

ACK_PAYLOAD_TYPE = "application/vnd.edgefleet.report-ack.v1+json"
#: At most this many ranges per list in one ack (more are sent in further acks).
MAX_RANGES = 256
_FIELDS = frozenset({"device", "lost", "sent_at", "stored"})

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Ack:
    device_id: str
    stored: Ranges
    lost: Ranges

    def seqs(self, which: Ranges) -> Iterable[int]:
        for low, high in which:
            yield from range(low, high + 1)


def to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges covering ``seqs`` (duplicates merged)."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def seal_ack(
    key: ReportKey,
    *,
    device_id: str,
    stored: Sequence[tuple[int, int]],
    lost: Sequence[tuple[int, int]] = (),
    sent_at: datetime | None = None,
) -> bytes:
    """The wire bytes of an ack for ``device_id``, MACed with its report ``key``."""
    if len(stored) > MAX_RANGES or len(lost) > MAX_RANGES:
        raise ValueError(f"an ack holds at most {MAX_RANGES} ranges per list")
    payload = json.dumps(
        {
            "device": validate_device_id(device_id),
            "lost": [list(r) for r in lost],
            "sent_at": format_time(sent_at or datetime.now(UTC)),
            "stored": [list(r) for r in stored],
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("ascii")
    return key.seal(payload, ACK_PAYLOAD_TYPE)


def _ranges(value: object) -> Ranges:
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise SignatureError("ack ranges are not a bounded list")
    out = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(type(v) is int and 1 <= v <= MAX_SEQ for v in item)
            or item[0] > item[1]
        ):
            raise SignatureError("ack range is not [low, high] of sequence numbers")
        out.append((item[0], item[1]))
    return tuple(out)


def open_ack(raw: bytes | bytearray, key: ReportKey, *, device_id: str) -> Ack:
    """The ack in ``raw`` if ``key`` MACed it for ``device_id``; ``SignatureError`` (one
    line) otherwise."""
    envelope = dsse_codec.decode_envelope(raw)
    if envelope.payload_type != ACK_PAYLOAD_TYPE:
        raise SignatureError("not a report acknowledgement")
    try:
        payload, _ = dsse_codec.open_envelope_by(
            envelope, ACK_PAYLOAD_TYPE, {key.kid: key.verifies}
        )
    except SignatureError as exc:
        raise SignatureError(f"ack is not MACed with this device's report key: {exc}") from exc
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError("ack payload is not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise SignatureError("ack payload has missing or unknown fields")
    try:
        named = validate_device_id(obj["device"])
    except ProtocolError as exc:
        raise SignatureError("ack names no valid device") from exc
    if named != device_id:
        raise SignatureError(f"ack is for device {named!r}")
    return Ack(named, _ranges(obj["stored"]), _ranges(obj["lost"]))
