"""Wrapping a device's report key for its enrolled P-256 key (ECIES: an ephemeral P-256
ECDH, HKDF-SHA256 bound to the device id and its key id, AES-256-GCM), so the key never
crosses the network in the clear: only the holder of the enrolled private key can read
it, even from a captured or replayed renewal answer (``model_store.report_key`` says why
devices have report keys).

Wire form of a wrapped key (base64): ``0x01 || ephemeral public key (65 bytes,
uncompressed) || nonce (12) || ciphertext (32) || tag (16)``.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from model_store.errors import SignatureError
from model_store.keys import key_id, require_p256
from model_store.report_key import KEY_BYTES, ReportKey, report_key

_VERSION = b"\x01"
_POINT_BYTES = 65
_NONCE_BYTES = 12
_WRAPPED_BYTES = 1 + _POINT_BYTES + _NONCE_BYTES + KEY_BYTES + 16


def _kek(shared: bytes, ephemeral: bytes, device_id: str, recipient_kid: str) -> bytes:
    info = (
        b"edgefleet report key wrap v1\x00" + device_id.encode() + b"\x00" + recipient_kid.encode()
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral, info=info).derive(shared)


def wrap_report_key(key: ReportKey, recipient: ec.EllipticCurvePublicKey, *, device_id: str) -> str:
    """``key`` encrypted to ``recipient`` (the device's enrolled key), base64."""
    require_p256(recipient, "the device key")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    kek = _kek(ephemeral.exchange(ec.ECDH(), recipient), point, device_id, key_id(recipient))
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(kek).encrypt(nonce, key.secret, device_id.encode())
    return base64.b64encode(_VERSION + point + nonce + sealed).decode("ascii")


def unwrap_report_key(
    wrapped: str, private_key: ec.EllipticCurvePrivateKey, *, device_id: str
) -> ReportKey:
    """The report key ``wrap_report_key`` encrypted to ``private_key``'s public half;
    ``SignatureError`` (one line) if it is malformed or was not made for this key."""
    try:
        raw = base64.b64decode(wrapped.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SignatureError("wrapped report key is not base64") from exc
    if len(raw) != _WRAPPED_BYTES or raw[:1] != _VERSION:
        raise SignatureError("wrapped report key has the wrong size or version")
    point, rest = raw[1 : 1 + _POINT_BYTES], raw[1 + _POINT_BYTES :]
    nonce, sealed = rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        shared = private_key.exchange(ec.ECDH(), ephemeral)
    except ValueError as exc:
        raise SignatureError("wrapped report key holds no valid P-256 point") from exc
    kek = _kek(shared, point, device_id, key_id(private_key.public_key()))
    try:
        secret = AESGCM(kek).decrypt(nonce, sealed, device_id.encode())
    except InvalidTag as exc:
        raise SignatureError("wrapped report key was not made for this device key") from exc
    return report_key(secret)
