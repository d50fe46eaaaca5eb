"""DSSE envelopes for EdgeFleet's own signed documents (trust documents, desired states).

The wire shape is ``protocol.SignedEnvelope``: ``payloadType``, base64 ``payload`` and
``signatures: [{keyid, sig}]`` where ``keyid`` is ``model_store.key_id`` of the signer's
public key and ``sig`` is a base64 DER ECDSA P-256 / SHA-256 signature over the DSSE
pre-authentication encoding (``envelope.pae``), which covers the payload type: a
signature made for one kind of document cannot be replayed as another.

Verification is strict: the payload type must be the expected one, base64 must be
canonical standard base64, sizes are bounded, signatures by key ids the caller does not
trust are ignored, and at least one signature must verify. Every failure is a
``SignatureError`` with a one-line reason.

The parts without public-key cryptography (the wire codec, opening with prepared checks)
live in ``model_store.dsse_codec``, which processes that must not load ``cryptography``
import; they are re-exported here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from model_store.dsse_codec import (
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_SIGNATURE_BYTES,
    MAX_SIGNATURES,
    SignatureCheck,
    b64decode_field,
    decode_envelope,
    encode_envelope,
    envelope_payload,
    open_envelope_by,
)
from model_store.envelope import pae
from model_store.errors import SignatureError
from model_store.keys import key_id, require_p256
from protocol.messages import EnvelopeSignature, SignedEnvelope

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_SIGNATURES",
    "MAX_SIGNATURE_BYTES",
    "SignatureCheck",
    "decode_envelope",
    "ecdsa_check",
    "encode_envelope",
    "envelope_payload",
    "open_envelope",
    "open_envelope_by",
    "sign_envelope",
]

_ECDSA = ec.ECDSA(hashes.SHA256())


def sign_envelope(
    payload: bytes, payload_type: str, signers: Sequence[ec.EllipticCurvePrivateKey]
) -> SignedEnvelope:
    """A DSSE envelope of ``payload`` signed by each of ``signers`` (duplicates dropped).

    ``KeyFileError`` if a signer is not ECDSA P-256; ``SignatureError`` if there is no
    signer, too many, or the payload is too large.
    """
    if not signers:
        raise SignatureError("an envelope needs at least one signer")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SignatureError(f"envelope payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    message = pae(payload, payload_type)
    signatures: dict[str, EnvelopeSignature] = {}
    for signer in signers:
        require_p256(signer, "a signing key")
        kid = key_id(signer.public_key())
        if kid not in signatures:
            sig = base64.b64encode(signer.sign(message, _ECDSA)).decode("ascii")
            signatures[kid] = EnvelopeSignature(keyid=kid, sig=sig)
    if len(signatures) > MAX_SIGNATURES:
        raise SignatureError(f"an envelope holds at most {MAX_SIGNATURES} signatures")
    return SignedEnvelope(
        payloadType=payload_type,
        payload=base64.b64encode(payload).decode("ascii"),
        signatures=list(signatures.values()),
    )


def open_envelope(
    envelope: SignedEnvelope,
    payload_type: str,
    keys: Mapping[str, ec.EllipticCurvePublicKey],
) -> tuple[bytes, frozenset[str]]:
    """Verify ``envelope``; return its payload and the ids of the keys that signed it.

    ``keys`` maps key id (``key_id``) to public key. Signatures whose key id is not in
    ``keys`` are ignored. ``SignatureError`` unless the payload type is ``payload_type``
    and at least one signature verifies with a key of ``keys``.
    """
    if envelope.payload_type != payload_type:
        raise SignatureError(
            f"wrong payload type {envelope.payload_type[:80]!r} (expected {payload_type!r})"
        )
    if not keys:
        raise SignatureError("no trusted keys to verify the envelope against")
    for kid, trusted in keys.items():
        require_p256(trusted, "a trusted key")
        if key_id(trusted) != kid:
            raise SignatureError(f"trusted key {kid[:16]} is listed under the wrong key id")
    if not envelope.signatures:
        raise SignatureError("envelope holds no signature")
    if len(envelope.signatures) > MAX_SIGNATURES:
        raise SignatureError(f"envelope holds more than {MAX_SIGNATURES} signatures")
    payload = envelope_payload(envelope)
    message = pae(payload, payload_type)
    verified: set[str] = set()
    for signature in envelope.signatures:
        key = keys.get(signature.keyid)
        if key is None or signature.keyid in verified:
            continue
        sig = b64decode_field(signature.sig, "signature", MAX_SIGNATURE_BYTES)
        try:
            key.verify(sig, message, _ECDSA)
        except (InvalidSignature, ValueError):
            continue
        verified.add(signature.keyid)
    if not verified:
        known = sum(1 for s in envelope.signatures if s.keyid in keys)
        if known:
            raise SignatureError("envelope signature does not verify against a trusted key")
        ids = ", ".join(s.keyid[:16] or "(empty)" for s in envelope.signatures[:3])
        raise SignatureError(f"envelope is not signed by a trusted key (key ids: {ids})")
    return payload, frozenset(verified)


def ecdsa_check(key: ec.EllipticCurvePublicKey) -> SignatureCheck:
    """The ``SignatureCheck`` of an ECDSA P-256 / SHA-256 key (its curve checked)."""
    require_p256(key, "a trusted key")

    def check(sig: bytes, message: bytes) -> bool:
        try:
            key.verify(sig, message, _ECDSA)
        except (InvalidSignature, ValueError):
            return False
        return True

    return check
