"""A device's report key: the 256-bit HMAC-SHA256 key its reports are sealed with.

Verifying an ECDSA P-256 signature costs the control plane ~75 us of CPU per report,
most of what authenticating a report costs; an HMAC costs ~2 us. So, as Azure IoT Hub
and AWS IoT do with their symmetric device keys, the control plane gives every enrolled
device a key of its own (random, per device, stored with its identity) and the device
MACs its reports with it. The key never crosses the network in the clear: it is
encrypted to the device's enrolled P-256 key (ECIES: an ephemeral P-256 ECDH,
HKDF-SHA256 bound to the device id and its key id, AES-256-GCM), so only the holder of
the enrolled private key can read it, even from a captured or replayed renewal answer.

Wire form of a wrapped key (base64): ``0x01 || ephemeral public key (65 bytes,
uncompressed) || nonce (12) || ciphertext (32) || tag (16)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from model_store.dsse import encode_envelope
from model_store.envelope import pae
from model_store.errors import SignatureError
from model_store.keys import key_id, require_p256
from protocol.messages import EnvelopeSignature, SignedEnvelope

KEY_BYTES = 32
#: A report key's id starts with this: envelopes name the MAC key they were sealed with.
KEY_ID_PREFIX = "hmac-sha256:"
_VERSION = b"\x01"
_POINT_BYTES = 65
_NONCE_BYTES = 12
_WRAPPED_BYTES = 1 + _POINT_BYTES + _NONCE_BYTES + KEY_BYTES + 16


@dataclass(frozen=True, repr=False)
class ReportKey:
    """A report key and its public id (the secret is never in ``repr``)."""

    secret: bytes
    kid: str
    #: the keyed HMAC state, copied for each MAC
    _keyed: hmac.HMAC = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keyed", hmac.new(self.secret, digestmod=hashlib.sha256))

    def __reduce__(self) -> tuple[type[ReportKey], tuple[bytes, str]]:
        return (ReportKey, (self.secret, self.kid))  # the HMAC state is rebuilt

    def mac(self, message: bytes) -> bytes:
        # a copy of the keyed state, not ``hmac.digest``: that one lets go of the GIL for
        # every MAC (``update`` only from 2 KiB), and a busy ingest worker then waits to
        # take it back each time
        keyed = self._keyed.copy()
        keyed.update(message)
        return keyed.digest()

    def seal(self, payload: bytes, payload_type: str) -> bytes:
        """The wire bytes of a DSSE envelope of ``payload`` MACed with this key (the MAC
        covers the pre-authentication encoding, so it binds ``payload_type``)."""
        tag = base64.b64encode(self.mac(pae(payload, payload_type))).decode("ascii")
        envelope = SignedEnvelope(
            payloadType=payload_type,
            payload=base64.b64encode(payload).decode("ascii"),
            signatures=[EnvelopeSignature(keyid=self.kid, sig=tag)],
        )
        return encode_envelope(envelope)

    def verifies(self, tag: bytes, message: bytes) -> bool:
        """Whether ``tag`` is this key's MAC of ``message`` (a ``dsse.SignatureCheck``)."""
        return hmac.compare_digest(self.mac(message), tag)

    def __repr__(self) -> str:
        return f"ReportKey({self.kid})"


def report_key(secret: bytes) -> ReportKey:
    """The ``ReportKey`` of 32 secret bytes (its id: a hash, not the key)."""
    if len(secret) != KEY_BYTES:
        raise ValueError(f"a report key is {KEY_BYTES} bytes, not {len(secret)}")
    digest = hashlib.sha256(b"edgefleet report key id\x00" + secret).hexdigest()
    return ReportKey(secret, KEY_ID_PREFIX + digest[:32])


def new_report_key() -> ReportKey:
    return report_key(os.urandom(KEY_BYTES))


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
