"""Trust documents: strict parsing, initial load, update / rotation / revocation rules."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from model_store import (
    SignatureError,
    TrustDocument,
    TrustError,
    build_bundle,
    build_trust_document,
    encode_envelope,
    generate_private_key,
    key_id,
    load_initial_trust,
    load_private_key,
    load_public_key,
    public_key_pem,
    sign_bundle,
    sign_envelope,
    verify_bundle_trusted,
    verify_signature_trusted,
    verify_trust_chain,
    verify_trust_update,
)
from model_store.trust import Role
from protocol import DESIRED_STATE_PAYLOAD_TYPE, TRUST_PAYLOAD_TYPE
from tests.support.onnx_models import affine_model
from tests.support.trust import TrustKit

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=30)

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey


class Keys:
    """The trust kit's keys, loaded."""

    def __init__(self, kit: TrustKit) -> None:
        self.root = load_private_key(kit.root_key)
        self.release = load_private_key(kit.release_key)
        self.cp = load_private_key(kit.cp_key)
        self.v1 = load_initial_trust(
            kit.trust_file.read_bytes(), [load_public_key(kit.root_pub)], now=NOW
        )


@pytest.fixture
def keys(trust_kit: TrustKit) -> Keys:
    return Keys(trust_kit)


def _doc(
    version: int,
    *,
    roots: list[PrivateKey],
    releases: list[PrivateKey],
    cps: list[PrivateKey],
    signers: list[PrivateKey],
    revoked: tuple[str, ...] = (),
    expires: datetime = NOW + timedelta(days=365),
) -> TrustDocument:
    return build_trust_document(
        version=version,
        expires=expires,
        roots=[k.public_key() for k in roots],
        releases=[k.public_key() for k in releases],
        control_planes=[k.public_key() for k in cps],
        revoked=revoked,
        signers=signers,
    )


def _kid(key: PrivateKey) -> str:
    return key_id(key.public_key())


def test_kit_document_is_version_1_with_one_key_per_role(keys: Keys) -> None:
    v1 = keys.v1
    assert v1.version == 1
    assert v1.expires > NOW + timedelta(days=364)
    assert set(v1.keys_for(Role.RELEASE)) == {_kid(keys.release)}
    assert set(v1.keys_for(Role.CONTROL_PLANE)) == {_kid(keys.cp)}
    assert set(v1.keys_for(Role.ROOT)) == {_kid(keys.root)}
    assert v1.revoked == frozenset()
    payload = json.loads(base64.b64decode(v1.envelope.payload))
    assert payload["_type"] == "edgefleet/trust"
    assert payload["expires"].endswith("Z")
    assert (
        base64.b64decode(v1.envelope.payload)
        == json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    )


def test_raw_round_trips(keys: Keys, trust_kit: TrustKit) -> None:
    assert keys.v1.raw() == trust_kit.trust_file.read_bytes()
    again = load_initial_trust(keys.v1.raw(), [keys.root.public_key()], now=NOW)
    assert again.version == 1 and again.keys.keys() == keys.v1.keys.keys()


def test_initial_trust_signed_by_a_non_pinned_key_is_refused(keys: Keys) -> None:
    other = generate_private_key()
    doc = _doc(1, roots=[other], releases=[keys.release], cps=[keys.cp], signers=[other])
    with pytest.raises(TrustError, match="not signed by a pinned root key"):
        load_initial_trust(doc.raw(), [keys.root.public_key()], now=NOW)


def test_initial_trust_signed_by_pinned_key_outside_its_root_role_is_refused(keys: Keys) -> None:
    other = generate_private_key()
    doc = _doc(1, roots=[other], releases=[keys.release], cps=[keys.cp], signers=[other, keys.root])
    with pytest.raises(TrustError, match="root role does not list"):
        load_initial_trust(doc.raw(), [keys.root.public_key()], now=NOW)


def test_expired_initial_trust_is_refused(keys: Keys) -> None:
    doc = _doc(
        1, roots=[keys.root], releases=[], cps=[], signers=[keys.root], expires=NOW - timedelta(1)
    )
    with pytest.raises(TrustError, match="expired"):
        load_initial_trust(doc.raw(), [keys.root.public_key()], now=NOW)
    with pytest.raises(TrustError, match="expired"):
        keys.v1.check_current(NOW + timedelta(days=400))


def test_update_to_the_next_version_is_accepted(keys: Keys) -> None:
    new_release = generate_private_key()
    v2 = _doc(
        2,
        roots=[keys.root],
        releases=[keys.release, new_release],
        cps=[keys.cp],
        signers=[keys.root],
    )
    accepted = verify_trust_update(keys.v1, v2.raw(), now=NOW)
    assert accepted.version == 2
    assert set(accepted.keys_for(Role.RELEASE)) == {_kid(keys.release), _kid(new_release)}


@pytest.mark.parametrize("version", [1, 3])
def test_update_must_be_exactly_one_version_higher(keys: Keys, version: int) -> None:
    doc = _doc(version, roots=[keys.root], releases=[keys.release], cps=[], signers=[keys.root])
    with pytest.raises(TrustError, match="expected 2"):
        verify_trust_update(keys.v1, doc.raw(), now=NOW)


def test_update_not_signed_by_the_current_root_is_refused(keys: Keys) -> None:
    attacker = generate_private_key()
    v2 = _doc(2, roots=[keys.root], releases=[attacker], cps=[], signers=[keys.root])
    payload = base64.b64decode(v2.envelope.payload)
    resigned = sign_envelope(payload, TRUST_PAYLOAD_TYPE, [attacker, keys.cp, keys.release])
    with pytest.raises(TrustError, match="not signed by a root key of version 1"):
        verify_trust_update(keys.v1, encode_envelope(resigned), now=NOW)


def test_rotation_signed_only_by_the_new_root_is_refused(keys: Keys) -> None:
    new_root = generate_private_key()
    forged = _doc(2, roots=[new_root], releases=[keys.release], cps=[keys.cp], signers=[new_root])
    with pytest.raises(TrustError, match="not signed by a root key of version 1"):
        verify_trust_update(keys.v1, forged.raw(), now=NOW)


def test_rotation_signed_only_by_the_old_root_is_refused(keys: Keys) -> None:
    new_root = generate_private_key()
    envelope = sign_envelope(
        base64.b64decode(
            _doc(2, roots=[new_root], releases=[], cps=[], signers=[new_root]).envelope.payload
        ),
        TRUST_PAYLOAD_TYPE,
        [keys.root],
    )
    with pytest.raises(TrustError, match="not signed by its own root key"):
        verify_trust_update(keys.v1, encode_envelope(envelope), now=NOW)


def test_rotation_signed_by_both_roots_is_accepted_and_retires_the_old_root(keys: Keys) -> None:
    new_root = generate_private_key()
    v2 = _doc(
        2, roots=[new_root], releases=[keys.release], cps=[keys.cp], signers=[keys.root, new_root]
    )
    current = verify_trust_update(keys.v1, v2.raw(), now=NOW)
    assert set(current.keys_for(Role.ROOT)) == {_kid(new_root)}
    old_only = _doc(3, roots=[keys.root], releases=[keys.release], cps=[], signers=[keys.root])
    with pytest.raises(TrustError, match="not signed by a root key of version 2"):
        verify_trust_update(current, old_only.raw(), now=NOW)
    v3 = _doc(3, roots=[new_root], releases=[keys.release], cps=[], signers=[new_root])
    assert verify_trust_update(current, v3.raw(), now=NOW).version == 3


def test_expired_update_is_refused(keys: Keys) -> None:
    v2 = _doc(2, roots=[keys.root], releases=[], cps=[], signers=[keys.root], expires=LATER)
    with pytest.raises(TrustError, match="expired"):
        verify_trust_update(keys.v1, v2.raw(), now=LATER + timedelta(seconds=1))


def test_trust_envelope_of_another_payload_type_is_refused(keys: Keys) -> None:
    payload = base64.b64decode(keys.v1.envelope.payload)
    envelope = sign_envelope(payload, DESIRED_STATE_PAYLOAD_TYPE, [keys.root])
    with pytest.raises(TrustError, match="wrong payload type"):
        load_initial_trust(encode_envelope(envelope), [keys.root.public_key()], now=NOW)


@pytest.fixture
def bundle(tmp_path: Path) -> Callable[[PrivateKey], Path]:
    def make(key: PrivateKey) -> Path:
        out = tmp_path / f"bundle-{_kid(key)[:8]}"
        build_bundle(affine_model(tmp_path / "m.onnx"), out, name="det", version="1.0")
        sign_bundle(out, key)
        return out

    return make


def test_bundle_signed_by_a_certified_release_key_is_trusted(
    keys: Keys, bundle: Callable[[PrivateKey], Path]
) -> None:
    path = bundle(keys.release)
    manifest = verify_bundle_trusted(path, keys.v1)
    assert manifest.key_id == _kid(keys.release)
    assert verify_signature_trusted((path / "model.sig").read_bytes(), keys.v1) == manifest
    with pytest.raises(TrustError, match="expired"):
        verify_bundle_trusted(path, keys.v1, now=NOW + timedelta(days=400))


@pytest.mark.parametrize("signer", ["cp", "root", "stranger"])
def test_bundle_signed_by_a_non_release_key_is_refused(
    keys: Keys, bundle: Callable[[PrivateKey], Path], signer: str
) -> None:
    key = generate_private_key() if signer == "stranger" else getattr(keys, signer)
    with pytest.raises(SignatureError, match="untrusted key"):
        verify_bundle_trusted(bundle(key), keys.v1)


def test_revoked_release_key_no_longer_signs_bundles(
    keys: Keys, bundle: Callable[[PrivateKey], Path]
) -> None:
    new_release = generate_private_key()
    v2 = _doc(
        2,
        roots=[keys.root],
        releases=[new_release],
        cps=[keys.cp],
        signers=[keys.root],
        revoked=(_kid(keys.release),),
    )
    current = verify_trust_update(keys.v1, v2.raw(), now=NOW)
    assert _kid(keys.release) not in current.keys_for(Role.RELEASE)
    with pytest.raises(SignatureError, match="untrusted key"):
        verify_bundle_trusted(bundle(keys.release), current)
    assert verify_bundle_trusted(bundle(new_release), current).key_id == _kid(new_release)


def test_a_revoked_key_stays_revoked(keys: Keys) -> None:
    revoked = (_kid(keys.release),)
    v2 = _doc(2, roots=[keys.root], releases=[], cps=[], signers=[keys.root], revoked=revoked)
    current = verify_trust_update(keys.v1, v2.raw(), now=NOW)
    v3 = _doc(3, roots=[keys.root], releases=[keys.release], cps=[], signers=[keys.root])
    with pytest.raises(TrustError, match="un-revokes"):
        verify_trust_update(current, v3.raw(), now=NOW)


def test_keys_for_excludes_revoked_keys(keys: Keys) -> None:
    crafted = replace(keys.v1, revoked=frozenset({_kid(keys.release)}))
    assert crafted.keys_for(Role.RELEASE) == {}
    assert set(crafted.keys_for(Role.CONTROL_PLANE)) == {_kid(keys.cp)}


def test_build_requires_a_signer_of_its_own_root_role(keys: Keys) -> None:
    with pytest.raises(TrustError, match="own root role"):
        _doc(1, roots=[keys.root], releases=[], cps=[], signers=[keys.release])


def _payload(keys: Keys) -> dict[str, Any]:
    pems = {_kid(k): public_key_pem(k.public_key()).decode() for k in (keys.root, keys.release)}
    return {
        "_type": "edgefleet/trust",
        "version": 1,
        "expires": (NOW + timedelta(days=1)).isoformat(),
        "keys": pems,
        "roles": {"root": [_kid(keys.root)], "release": [_kid(keys.release)], "control-plane": []},
        "revoked": [],
    }


def _bad(change: Callable[[dict[str, Any], Keys], None]) -> Callable[[dict[str, Any], Keys], None]:
    return change


BAD_PAYLOADS: dict[str, tuple[Callable[[dict[str, Any], Keys], None], str]] = {
    "type": (lambda p, k: p.update(_type="tuf/root"), "_type"),
    "version 0": (lambda p, k: p.update(version=0), "version"),
    "version str": (lambda p, k: p.update(version="1"), "version"),
    "version bool": (lambda p, k: p.update(version=True), "version"),
    "naive expiry": (lambda p, k: p.update(expires="2100-01-01T00:00:00"), "time zone"),
    "bad expiry": (lambda p, k: p.update(expires="tomorrow"), "ISO-8601"),
    "unknown field": (lambda p, k: p.update(threshold=2), "unknown fields"),
    "missing field": (lambda p, k: p.pop("revoked"), "missing"),
    "empty root": (lambda p, k: p["roles"].update(root=[]), "root role is empty"),
    "unknown role": (lambda p, k: p["roles"].update(admin=[]), "may name device-ca"),
    "required role missing": (lambda p, k: p["roles"].pop("release"), "must name root"),
    "role key missing": (lambda p, k: p["roles"].update({"control-plane": ["a" * 64]}), "unknown"),
    "two roles": (lambda p, k: p["roles"].update({"control-plane": [_kid(k.release)]}), "two"),
    "revoked in role": (lambda p, k: p.update(revoked=[_kid(k.release)]), "both revoked"),
    "bad key id": (lambda p, k: p.update(revoked=["nope"]), "invalid key id"),
    "wrong key id": (
        lambda p, k: p["keys"].update(
            {_kid(k.release): public_key_pem(k.cp.public_key()).decode()}
        ),
        "wrong key id",
    ),
    "not pem": (lambda p, k: p["keys"].update({_kid(k.release): "hello"}), "PEM"),
    "unused key": (
        lambda p, k: p["keys"].update({_kid(k.cp): public_key_pem(k.cp.public_key()).decode()}),
        "holds no role",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS))
def test_malformed_documents_are_refused_in_one_line(keys: Keys, case: str) -> None:
    change, reason = BAD_PAYLOADS[case]
    payload = _payload(keys)
    good = encode_envelope(
        sign_envelope(json.dumps(payload).encode(), TRUST_PAYLOAD_TYPE, [keys.root])
    )
    assert load_initial_trust(good, [keys.root.public_key()], now=NOW).version == 1
    change(payload, keys)
    raw = encode_envelope(
        sign_envelope(json.dumps(payload).encode(), TRUST_PAYLOAD_TYPE, [keys.root])
    )
    with pytest.raises(TrustError, match=reason) as info:
        load_initial_trust(raw, [keys.root.public_key()], now=NOW)
    assert "\n" not in str(info.value)


def test_duplicate_fields_and_garbage_are_refused(keys: Keys) -> None:
    text = json.dumps(_payload(keys))
    dup = text[:-1] + ', "version": 2}'
    raw = encode_envelope(sign_envelope(dup.encode(), TRUST_PAYLOAD_TYPE, [keys.root]))
    with pytest.raises(TrustError, match="duplicate field"):
        load_initial_trust(raw, [keys.root.public_key()], now=NOW)
    with pytest.raises(TrustError, match="malformed envelope"):
        load_initial_trust(b"{}", [keys.root.public_key()], now=NOW)


def test_a_chain_may_pass_an_expired_version_but_never_end_on_one() -> None:
    root, release, cp = (generate_private_key() for _ in range(3))
    now = datetime.now(UTC)

    def doc(version: int, expires: datetime) -> bytes:
        return build_trust_document(
            version=version,
            expires=expires,
            roots=[root.public_key()],
            releases=[release.public_key()],
            control_planes=[cp.public_key()],
            signers=[root],
        ).raw()

    v1 = load_initial_trust(doc(1, now + timedelta(days=1)), [root.public_key()], now=now)
    stale_v2, fresh_v3 = doc(2, now - timedelta(days=1)), doc(3, now + timedelta(days=30))
    with pytest.raises(TrustError):
        verify_trust_update(v1, stale_v2, now=now)
    steps = verify_trust_chain(v1, [stale_v2, fresh_v3], now=now)
    assert [d.version for d in steps] == [2, 3]
    with pytest.raises(TrustError):
        verify_trust_chain(v1, [stale_v2], now=now)
    with pytest.raises(TrustError):
        verify_trust_chain(v1, [fresh_v3], now=now)  # skips version 2
