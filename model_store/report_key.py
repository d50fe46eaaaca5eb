"""A device's report key: the 256-bit HMAC-SHA256 key its reports are sealed with.

Verifying an ECDSA P-256 signature costs the control plane ~75 us of CPU per report,
most of what authenticating a report costs; an HMAC costs ~2 us. So, as Azure IoT Hub
and AWS IoT do with their symmetric device keys, the control plane gives every enrolled
device a key of its own (random, per device, stored with its identity) and the device
MACs its reports with it. The key never crosses the network in the clear: it is
encrypted to the device's enrolled P-256 key (ECIES: an ephemeral P-256 ECDH,
HKDF-SHA256 bound to the device id and its key id, AES-256-GCM), so only the holder of
the enrolled private key can read it, even from a captured or replayed renewal answer
(``model_store.report_key_wrap``).

This module is stdlib HMAC only and must not import ``cryptography``: the agent's
long-lived process seals every report with it, and ``cryptography`` would stay in its
memory for good (issue 18). ``wrap_report_key`` and ``unwrap_report_key`` are still
importable from here; they load ``model_store.report_key_wrap`` when first asked for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from model_store.dsse_codec import encode_envelope
from model_store.envelope import pae
from protocol.messages import EnvelopeSignature, SignedEnvelope

if TYPE_CHECKING:
    from model_store.report_key_wrap import unwrap_report_key, wrap_report_key

__all__ = [
    "KEY_BYTES",
    "KEY_ID_PREFIX",
    "ReportKey",
    "new_report_key",
    "report_key",
    "unwrap_report_key",
    "wrap_report_key",
]

KEY_BYTES = 32
#: A report key's id starts with this: envelopes name the MAC key they were sealed with.
KEY_ID_PREFIX = "hmac-sha256:"


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


if not TYPE_CHECKING:  # hidden from mypy, which then still flags a misspelled name

    def __getattr__(name: str) -> object:
        # wrap/unwrap live in report_key_wrap (ECDH, HKDF, AES-GCM), imported on first use
        if name in ("wrap_report_key", "unwrap_report_key"):
            from model_store import report_key_wrap

            return getattr(report_key_wrap, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
