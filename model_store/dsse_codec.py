"""DSSE envelopes without public-key cryptography: the wire codec and opening an
envelope with prepared signature checks (a report key's MAC).

This module must not import ``cryptography`` (nor anything that does): the agent's
long-lived process decodes envelopes and checks MACs with it, and ``cryptography`` would
stay in its memory for good (issue 18). Signing and ECDSA verification are
``model_store.dsse``'s, which re-exports everything here.

Decoding is strict: base64 must be canonical standard base64 and sizes are bounded.
Every failure is a ``SignatureError`` with a one-line reason.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping

from pydantic import ValidationError

from model_store.envelope import pae
from model_store.errors import SignatureError
from model_store.strict_json import StrictJson
from protocol.messages import SignedEnvelope, encode

#: Largest decoded payload accepted (trust documents and desired states are small).
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
#: Largest serialised envelope accepted by ``decode_envelope``.
MAX_ENVELOPE_BYTES = 6 * 1024 * 1024
#: A DER ECDSA P-256 signature is at most 72 bytes; anything much larger is not one.
MAX_SIGNATURE_BYTES = 256
MAX_SIGNATURES = 16

#: Checks one signature: ``(signature bytes, the PAE message) -> verified``.
SignatureCheck = Callable[[bytes, bytes], bool]


def b64decode_field(value: str, what: str, limit: int) -> bytes:
    """``value`` decoded from canonical standard base64, at most ``limit`` bytes."""
    if len(value) > (limit + 2) // 3 * 4:
        raise SignatureError(f"envelope {what} is larger than {limit} bytes")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SignatureError(f"envelope {what} is not valid base64") from exc
    if base64.b64encode(data).decode("ascii") != value:
        raise SignatureError(f"envelope {what} is not canonical base64")
    return data


def open_envelope_by(
    envelope: SignedEnvelope, payload_type: str, checks: Mapping[str, SignatureCheck]
) -> tuple[bytes, str]:
    """``open_envelope`` for hot paths (sealed reports): ``checks`` maps key id to a
    prepared check (``dsse.ecdsa_check``, or a MAC's). The payload and the id of the key
    whose signature verified (the first listed that ``checks`` knows), else
    ``SignatureError``."""
    if envelope.payload_type != payload_type:
        raise SignatureError(
            f"wrong payload type {envelope.payload_type[:80]!r} (expected {payload_type!r})"
        )
    if not 1 <= len(envelope.signatures) <= MAX_SIGNATURES:
        raise SignatureError("envelope holds no signature, or too many")
    payload = envelope_payload(envelope)
    for signature in envelope.signatures:
        check = checks.get(signature.keyid)
        if check is None:
            continue
        sig = b64decode_field(signature.sig, "signature", MAX_SIGNATURE_BYTES)
        if not check(sig, pae(payload, payload_type)):
            raise SignatureError("envelope signature does not verify against a trusted key")
        return payload, signature.keyid
    ids = ", ".join(s.keyid[:16] or "(empty)" for s in envelope.signatures[:3])
    raise SignatureError(f"envelope is not signed by a trusted key (key ids: {ids})")


def envelope_payload(envelope: SignedEnvelope) -> bytes:
    """The decoded payload WITHOUT any signature check (to display or inspect only)."""
    return b64decode_field(envelope.payload, "payload", MAX_PAYLOAD_BYTES)


#: The envelope's strict JSON and the wording of its errors.
_JSON = StrictJson(
    SignatureError,
    invalid="malformed envelope: not valid JSON ({exc})",
    duplicate="envelope has a duplicate key {key}",
    not_object="malformed envelope: not a JSON object",
    key_chars=40,
)


def decode_envelope(raw: bytes | bytearray | str) -> SignedEnvelope:
    """Parse an envelope's JSON wire bytes; ``SignatureError`` (one line) if malformed."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise SignatureError(f"envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    obj = _JSON.parse_object(raw)
    try:
        return SignedEnvelope.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ())) or "envelope"
        raise SignatureError(f"malformed envelope: {where}: {first.get('msg')}") from exc


def encode_envelope(envelope: SignedEnvelope) -> bytes:
    """An envelope's JSON wire bytes (``payloadType`` spelled as in DSSE)."""
    return encode(envelope)
