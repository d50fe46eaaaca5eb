"""The signature file: a Sigstore bundle v0.3 (JSON) holding one DSSE envelope.

Written as upstream ``model_signing`` 1.1 writes it for "key" signing::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": SHA256_HEX_OF_PUBLIC_KEY_PEM},
                              "tlogEntries": []},
     "dsseEnvelope": {"payload": BASE64_STATEMENT,
                      "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": BASE64_DER_ECDSA, "keyid": ""}]}}

The ECDSA signature covers the DSSE pre-authentication encoding (``pae``) of the
payload. Decoding only checks structure; ``signing`` checks the signature itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from model_store.errors import SignatureError
from model_store.strict_json import StrictJson

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_SIGNATURE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Envelope:
    """The parts of a signature file that matter: payload, DER signature, key hint, and
    the signer's key id (``model_store.key_id``) when the signature names it (edgectl
    writes it into the DSSE ``keyid``; upstream ``model_signing`` leaves that empty)."""

    payload: bytes
    signature: bytes
    key_hint: str | None
    key_id: str | None = None


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes the ECDSA signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def encode_bundle(payload: bytes, signature: bytes, key_hint: str, key_id: str = "") -> bytes:
    """The signature file's bytes (compact JSON, as upstream writes it; ``key_id`` goes
    into the DSSE signature's ``keyid``, which upstream's verifier ignores)."""
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": key_id}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode("utf-8")


#: The signature file's strict JSON and the wording of its errors.
_JSON = StrictJson(
    SignatureError,
    invalid="malformed signature: not valid JSON ({exc})",
    duplicate="signature has a duplicate key {key}",
    not_object="malformed signature: not a JSON object",
    missing="malformed signature: {where}.{key} is missing",
    wrong_type="malformed signature: {where}.{key} is not a {kind}",
)


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SignatureError(f"malformed signature: {where} is not valid base64") from exc


def decode_bundle(data: bytes) -> Envelope:
    """Parse a signature file; ``SignatureError`` unless it is a key-signed DSSE bundle."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"signature is larger than {MAX_SIGNATURE_BYTES} bytes")
    bundle = _JSON.parse_object(data)
    media_type = _JSON.req_str(bundle, "mediaType", "bundle")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise SignatureError(f"unsupported signature media type {media_type!r}")
    material = _JSON.req_dict(bundle, "verificationMaterial", "bundle")
    if "publicKey" not in material:
        raise SignatureError(
            "signature was not made with a key (no verificationMaterial.publicKey)"
        )
    public_key = _JSON.req_dict(material, "publicKey", "verificationMaterial")
    hint = public_key.get("hint")
    if hint is not None and not isinstance(hint, str):
        raise SignatureError("malformed signature: publicKey.hint is not a string")
    envelope = _JSON.req_dict(bundle, "dsseEnvelope", "bundle")
    payload_type = _JSON.req_str(envelope, "payloadType", "dsseEnvelope")
    if payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"unsupported payload type {payload_type!r} (expected {PAYLOAD_TYPE})")
    payload = _b64(_JSON.req_str(envelope, "payload", "dsseEnvelope"), "dsseEnvelope.payload")
    signatures = _JSON.req_list(envelope, "signatures", "dsseEnvelope")
    if len(signatures) != 1:
        raise SignatureError(f"signature must hold exactly one signature, got {len(signatures)}")
    signature = _b64(_JSON.req_str(signatures[0], "sig", "signatures[0]"), "signatures[0].sig")
    keyid = signatures[0].get("keyid")
    if keyid is not None and not isinstance(keyid, str):
        raise SignatureError("malformed signature: signatures[0].keyid is not a string")
    return Envelope(
        payload=payload, signature=signature, key_hint=hint or None, key_id=keyid or None
    )
