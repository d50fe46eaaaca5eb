"""Sealed device reports: every report a device sends is signed with its enrolled key.

A sealed report is a DSSE envelope (``protocol.SignedEnvelope``, payload type
``REPORT_PAYLOAD_TYPE``) sealed by the device: with an HMAC-SHA256 by its report key
(``model_store.report_key``; the key id names it) once it holds one, else signed by its
enrolled ECDSA P-256 key. Either covers the DSSE pre-authentication encoding of::

    {"body": MESSAGE, "device": ID, "seq": N, "sent_at": "2026-12-05T10:00:00.123Z",
     "stream": STREAM}

``MESSAGE`` is the report itself (``protocol`` state, event, heartbeat or availability),
``STREAM`` says which ordered stream it belongs to: the topic kind, or ``will`` for the
offline notice the broker publishes on the device's behalf (sealed at each connect), and
``seq`` grows strictly within a device's lifetime of its key: the receiver keeps a
window of the sequence numbers it has seen per stream and drops a repeat (replay
protection; see ``ReplayWindow``). ``sent_at`` lets the receiver refuse reports from the
future. The signature covers everything, the topic's device and stream included, so a
report cannot be moved to another device's topic or another kind.

Parsing is strict and bounded; every failure is a ``SignatureError`` with one line.

Sealing with a report key and opening a report need no ``cryptography``, and importing
this module must not load it (the agent's long-lived process seals every report, and
``cryptography`` would stay in its memory for good: issue 18). The ECDSA parts import it
where they run: the branch of ``seal_report`` for a private key, and ``device_keys``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from model_store import dsse_codec
from model_store.errors import SignatureError
from model_store.report_key import ReportKey
from protocol import ProtocolError, TopicKind, validate_device_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

REPORT_PAYLOAD_TYPE = "application/vnd.edgefleet.report.v1+json"
#: The stream of the offline notice (MQTT will) the broker publishes for a device.
WILL_STREAM = "will"
STREAMS = frozenset({*(k.value for k in TopicKind if k is not TopicKind.DESIRED), WILL_STREAM})
MAX_SEQ = 2**63 - 1
_FIELDS = frozenset({"body", "device", "seq", "sent_at", "stream"})


class MalformedReport(SignatureError):
    """A report whose signature verifies but whose payload is not a well-formed report."""


@dataclass(frozen=True)
class Report:
    """An opened, signature-checked report (the body not yet validated as a message)."""

    device_id: str
    stream: str
    seq: int
    sent_at: datetime
    body: dict[str, Any]
    key_id: str


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seal_report(
    key: ec.EllipticCurvePrivateKey | ReportKey,
    *,
    device_id: str,
    stream: str,
    seq: int,
    body: bytes,
    sent_at: datetime | None = None,
) -> bytes:
    """The wire bytes of ``body`` (a message's JSON) sealed by ``key``: MACed by a report
    key, or signed by the device's private key."""
    if stream not in STREAMS:
        raise ValueError(f"unknown report stream {stream!r}")
    if not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"report sequence number {seq} out of range")
    header = json.dumps(
        {
            "device": validate_device_id(device_id),
            "seq": seq,
            "sent_at": format_time(sent_at or datetime.now(UTC)),
            "stream": stream,
        },
        separators=(",", ":"),
    )
    payload = b'{"body":' + body + b"," + header[1:].encode("ascii")
    if isinstance(key, ReportKey):
        return key.seal(payload, REPORT_PAYLOAD_TYPE)
    from model_store.dsse import sign_envelope  # loads cryptography (see the docstring)

    return dsse_codec.encode_envelope(sign_envelope(payload, REPORT_PAYLOAD_TYPE, [key]))


def _parse(payload: bytes, signer: str) -> Report:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedReport("sealed report payload is not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise MalformedReport("sealed report payload has missing or unknown fields")
    body, seq, stream = obj["body"], obj["seq"], obj["stream"]
    if not isinstance(body, dict):
        raise MalformedReport("sealed report body is not an object")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise MalformedReport("sealed report seq is not an integer in range")
    if stream not in STREAMS:
        raise MalformedReport(f"sealed report stream {str(stream)[:40]!r} is unknown")
    try:
        device_id = validate_device_id(obj["device"])
        sent_at = datetime.fromisoformat(obj["sent_at"])
    except (ProtocolError, TypeError, ValueError) as exc:
        raise MalformedReport("sealed report device or sent_at is malformed") from exc
    if sent_at.tzinfo is None:
        raise MalformedReport("sealed report sent_at has no time zone")
    return Report(device_id, stream, seq, sent_at, body, signer)


@dataclass(frozen=True)
class DeviceKeys:
    """What a device's reports may be sealed by: its enrolled key (``kid``, the id
    reports are attributed to) and its report key, if it was given one."""

    kid: str
    checks: Mapping[str, dsse_codec.SignatureCheck]
    mac: ReportKey | None = None


def device_keys(key: ec.EllipticCurvePublicKey, mac: ReportKey | None = None) -> DeviceKeys:
    """The ``DeviceKeys`` of a P-256 device key and its report key (prepared once)."""
    from model_store.dsse import ecdsa_check  # loads cryptography (see the docstring)
    from model_store.keys import key_id, require_p256

    require_p256(key, "a device key")
    kid = key_id(key)
    checks: dict[str, dsse_codec.SignatureCheck] = {kid: ecdsa_check(key)}
    if mac is not None:
        checks[mac.kid] = mac.verifies
    return DeviceKeys(kid, checks, mac)


def open_report(raw: bytes | bytearray, keys: DeviceKeys) -> Report:
    """Open a report sealed by one of a device's ``keys`` (``device_keys``)."""
    envelope = dsse_codec.decode_envelope(raw)
    payload, _ = dsse_codec.open_envelope_by(envelope, REPORT_PAYLOAD_TYPE, keys.checks)
    return _parse(payload, keys.kid)


@dataclass(frozen=True)
class ReplayWindow:
    """The sequence numbers seen on one stream: the highest, and a bitmap of the
    ``WIDTH`` below it (bit ``i`` set: ``top - 1 - i`` was seen), like IPsec's and
    DTLS's anti-replay windows. A window slides forward; nothing below it is accepted."""

    WIDTH = 62

    top: int = 0
    seen: int = 0

    def accept(self, seq: int) -> ReplayWindow | None:
        """The window after accepting ``seq``, or None if it is a repeat or too old."""
        if seq > self.top:
            shift = seq - self.top
            seen = ((self.seen << shift) | (1 << (shift - 1))) if shift <= self.WIDTH else 0
            return ReplayWindow(seq, seen & ((1 << self.WIDTH) - 1))
        back = self.top - seq - 1  # 0 for top - 1
        if seq == self.top or back >= self.WIDTH or self.seen & (1 << back):
            return None
        return ReplayWindow(self.top, self.seen | (1 << back))
