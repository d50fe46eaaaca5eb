"""DSSE envelopes: round trip, payload type binding, tampering, unknown keys, bounds."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from model_store import (
    KeyFileError,
    SignatureError,
    decode_envelope,
    encode_envelope,
    generate_private_key,
    key_id,
    open_envelope,
    sign_envelope,
)
from model_store.envelope import pae
from protocol import DESIRED_STATE_PAYLOAD_TYPE, TRUST_PAYLOAD_TYPE, EnvelopeSignature

PAYLOAD = b'{"hello":"world"}'


def _keys(*private: ec.EllipticCurvePrivateKey) -> dict[str, ec.EllipticCurvePublicKey]:
    return {key_id(k.public_key()): k.public_key() for k in private}


def test_round_trip_returns_payload_and_signer_ids() -> None:
    a, b = generate_private_key(), generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [a, b, a])
    assert len(envelope.signatures) == 2
    payload, ids = open_envelope(envelope, TRUST_PAYLOAD_TYPE, _keys(a, b))
    assert payload == PAYLOAD
    assert ids == frozenset(_keys(a, b))
    _, only_a = open_envelope(envelope, TRUST_PAYLOAD_TYPE, _keys(a))
    assert only_a == frozenset(_keys(a))


def test_wire_round_trip_uses_dsse_field_names() -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [key])
    raw = encode_envelope(envelope)
    assert json.loads(raw)["payloadType"] == TRUST_PAYLOAD_TYPE
    assert decode_envelope(raw) == envelope
    assert open_envelope(decode_envelope(raw), TRUST_PAYLOAD_TYPE, _keys(key))[0] == PAYLOAD


def test_signature_follows_dsse_pae() -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [key])
    key.public_key().verify(
        base64.b64decode(envelope.signatures[0].sig),
        pae(PAYLOAD, TRUST_PAYLOAD_TYPE),
        ec.ECDSA(hashes.SHA256()),
    )


def test_wrong_payload_type_is_refused() -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, DESIRED_STATE_PAYLOAD_TYPE, [key])
    with pytest.raises(SignatureError, match="wrong payload type"):
        open_envelope(envelope, TRUST_PAYLOAD_TYPE, _keys(key))


def test_payload_type_relabelled_does_not_verify() -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, DESIRED_STATE_PAYLOAD_TYPE, [key])
    relabelled = envelope.model_copy(update={"payload_type": TRUST_PAYLOAD_TYPE})
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(relabelled, TRUST_PAYLOAD_TYPE, _keys(key))


def test_tampered_payload_is_refused() -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [key])
    forged = base64.b64encode(b'{"hello":"there"}').decode()
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(
            envelope.model_copy(update={"payload": forged}), TRUST_PAYLOAD_TYPE, _keys(key)
        )


def test_unknown_key_is_refused_and_its_signatures_ignored() -> None:
    signer, stranger = generate_private_key(), generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [stranger])
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        open_envelope(envelope, TRUST_PAYLOAD_TYPE, _keys(signer))
    both = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [stranger, signer])
    assert open_envelope(both, TRUST_PAYLOAD_TYPE, _keys(signer))[1] == frozenset(_keys(signer))


def test_signature_under_a_trusted_id_by_another_key_is_refused() -> None:
    trusted, attacker = generate_private_key(), generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [attacker])
    stolen_id = key_id(trusted.public_key())
    sigs = [EnvelopeSignature(keyid=stolen_id, sig=envelope.signatures[0].sig)]
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(
            envelope.model_copy(update={"signatures": sigs}), TRUST_PAYLOAD_TYPE, _keys(trusted)
        )


def test_keys_must_be_listed_under_their_own_id() -> None:
    a, b = generate_private_key(), generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [a])
    with pytest.raises(SignatureError, match="wrong key id"):
        open_envelope(envelope, TRUST_PAYLOAD_TYPE, {key_id(a.public_key()): b.public_key()})


def test_no_trusted_keys_is_refused() -> None:
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [generate_private_key()])
    with pytest.raises(SignatureError, match="no trusted keys"):
        open_envelope(envelope, TRUST_PAYLOAD_TYPE, {})


@pytest.mark.parametrize("payload", ["not base64!", "aGVsbG8=\n", "aGVsbG9="])
def test_invalid_or_non_canonical_base64_is_refused(payload: str) -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [key])
    with pytest.raises(SignatureError, match="base64"):
        open_envelope(
            envelope.model_copy(update={"payload": payload}), TRUST_PAYLOAD_TYPE, _keys(key)
        )


def test_oversized_signature_is_refused() -> None:
    key = generate_private_key()
    envelope = sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [key])
    big = EnvelopeSignature(
        keyid=key_id(key.public_key()), sig=base64.b64encode(b"x" * 600).decode()
    )
    with pytest.raises(SignatureError, match="larger than"):
        open_envelope(
            envelope.model_copy(update={"signatures": [big]}), TRUST_PAYLOAD_TYPE, _keys(key)
        )


def test_signing_needs_a_p256_signer() -> None:
    with pytest.raises(SignatureError, match="at least one signer"):
        sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [])
    with pytest.raises(KeyFileError, match="P-256"):
        sign_envelope(PAYLOAD, TRUST_PAYLOAD_TYPE, [ec.generate_private_key(ec.SECP384R1())])


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"payloadType": "x", "payload": "eA==", "signatures": []}',
        b'{"payloadType": "x", "payloadType": "y", "payload": "eA==", '
        b'"signatures": [{"keyid": "", "sig": "eA=="}]}',
        b'{"payload": "eA==", "signatures": [{"keyid": "", "sig": "eA=="}]}',
    ],
)
def test_malformed_wire_envelopes_are_refused_in_one_line(raw: bytes) -> None:
    with pytest.raises(SignatureError) as info:
        decode_envelope(raw)
    assert "\n" not in str(info.value)
