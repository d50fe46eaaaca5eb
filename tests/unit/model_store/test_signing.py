"""Signing bundles and verifying their signatures (format, trust, tampering)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from model_store import (
    SIGNATURE_FILENAME,
    BundleError,
    KeyFileError,
    SignatureError,
    build_bundle,
    bundle_files,
    generate_private_key,
    key_id,
    sign_bundle,
    verify_bundle,
    verify_signature,
)
from tests.support.onnx_models import affine_model

PAYLOAD_TYPE = "application/vnd.in-toto+json"


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return generate_private_key()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    affine_model(src / "model.onnx")
    (src / "labels").mkdir()
    (src / "labels" / "en.txt").write_text("cat\ndog\n")
    out = tmp_path / "bundle"
    build_bundle(src, out, name="det", version="1.4.0")
    return out


def _pem_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _sig_json(sig_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sig_path.read_text())
    return data


def _payload(sig: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(sig["dsseEnvelope"]["payload"]))
    return data


def _resign(
    sig: dict[str, Any],
    key: ec.EllipticCurvePrivateKey,
    statement: dict[str, Any] | None = None,
    payload_type: str = PAYLOAD_TYPE,
) -> bytes:
    """Re-sign a (modified) statement, written independently of model_store's encoder."""
    payload = json.dumps(statement if statement is not None else _payload(sig)).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    der = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    out = json.loads(json.dumps(sig))
    out["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    out["dsseEnvelope"]["payloadType"] = payload_type
    out["dsseEnvelope"]["signatures"] = [{"sig": base64.b64encode(der).decode(), "keyid": ""}]
    return json.dumps(out).encode()


def test_sign_and_verify_round_trip(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    sig_path = sign_bundle(bundle, key)
    assert sig_path == bundle / SIGNATURE_FILENAME
    manifest = verify_bundle(bundle, [key.public_key()])
    files = bundle_files(bundle)
    assert [(e.path, e.sha256) for e in manifest.files] == [(f.path, f.sha256) for f in files]
    assert [e.path for e in manifest.files] == ["edgefleet.json", "labels/en.txt", "model.onnx"]
    raw = b"".join(bytes.fromhex(f.sha256) for f in files)
    assert manifest.bundle_digest == hashlib.sha256(raw).hexdigest()
    assert manifest.subject_name == "det"
    assert manifest.key_id == key_id(key.public_key())
    assert verify_signature(sig_path.read_bytes(), [key.public_key()]) == manifest


def test_signature_file_has_the_upstream_shape(
    bundle: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    sig = _sig_json(sign_bundle(bundle, key))
    assert sig["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert sig["verificationMaterial"] == {
        "publicKey": {"hint": _pem_hint(key.public_key())},
        "tlogEntries": [],
    }
    envelope = sig["dsseEnvelope"]
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert len(envelope["signatures"]) == 1
    statement = _payload(sig)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "model.sig"],
    }
    resources = statement["predicate"]["resources"]
    assert {r["algorithm"] for r in resources} == {"sha256"}
    # ECDSA P-256 / SHA-256 over the DSSE PAE of the payload, DER encoded
    payload = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    der = base64.b64decode(envelope["signatures"][0]["sig"])
    key.public_key().verify(der, pae, ec.ECDSA(hashes.SHA256()))


def test_verify_with_several_trusted_keys(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    sign_bundle(bundle, key)
    others = [generate_private_key().public_key() for _ in range(3)]
    manifest = verify_bundle(bundle, [*others, key.public_key()])
    assert manifest.key_id == key_id(key.public_key())


def test_resigning_replaces_the_signature(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    sign_bundle(bundle, generate_private_key())
    sign_bundle(bundle, key)
    verify_bundle(bundle, [key.public_key()])
    assert sorted(p.name for p in bundle.iterdir() if p.name.startswith(".")) == []


def test_flipped_byte_is_a_signature_error(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    sign_bundle(bundle, key)
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match=r"'model\.onnx' does not match its signature"):
        verify_bundle(bundle, [key.public_key()])


def test_extra_and_missing_files_are_bundle_errors(
    bundle: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    sign_bundle(bundle, key)
    (bundle / "labels" / "fr.txt").write_text("chat\n")
    with pytest.raises(BundleError, match=r"does not cover: 'labels/fr\.txt'"):
        verify_bundle(bundle, [key.public_key()])
    (bundle / "labels" / "fr.txt").unlink()
    (bundle / "labels" / "en.txt").unlink()
    with pytest.raises(BundleError, match=r"lacks signed files: 'labels/en\.txt'"):
        verify_bundle(bundle, [key.public_key()])


def test_untrusted_key_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    sig_path = sign_bundle(bundle, key)
    stranger = generate_private_key().public_key()
    # the refusal names the signer by the key id `edgectl keys create` printed for it
    signer = key_id(key.public_key())
    with pytest.raises(SignatureError, match=rf"untrusted key \(key id {signer[:16]}\)$"):
        verify_bundle(bundle, [stranger])
    sig = _sig_json(sig_path)
    assert sig["dsseEnvelope"]["signatures"][0]["keyid"] == signer
    # upstream's tools write no key id: the refusal can only give the hint
    sig["dsseEnvelope"]["signatures"][0]["keyid"] = ""
    with pytest.raises(SignatureError, match="names no key id: made by another tool"):
        verify_signature(json.dumps(sig).encode(), [stranger])
    # without the (unsigned) hint and key id, every trusted key is tried; none verifies
    del sig["verificationMaterial"]["publicKey"]["hint"]
    with pytest.raises(SignatureError, match="does not verify against any trusted key"):
        verify_signature(json.dumps(sig).encode(), [stranger])
    assert verify_signature(json.dumps(sig).encode(), [key.public_key()]).subject_name == "det"
    with pytest.raises(SignatureError, match="no trusted keys"):
        verify_signature(sig_path.read_bytes(), [])


def test_lying_hint_does_not_help(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    attacker = generate_private_key()
    trusted = key.public_key()
    sig = _sig_json(sign_bundle(bundle, attacker))
    sig["verificationMaterial"]["publicKey"]["hint"] = _pem_hint(trusted)
    with pytest.raises(SignatureError, match="untrusted key"):  # its own key id still
        verify_signature(json.dumps(sig).encode(), [trusted])
    sig["dsseEnvelope"]["signatures"][0]["keyid"] = key_id(trusted)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(json.dumps(sig).encode(), [trusted])


def test_edited_digest_in_payload_breaks_the_signature(
    bundle: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    sig = _sig_json(sign_bundle(bundle, key))
    statement = _payload(sig)
    statement["predicate"]["resources"][-1]["digest"] = "0" * 64
    sig["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (bundle / SIGNATURE_FILENAME).write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_bundle(bundle, [key.public_key()])


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(statement: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = statement
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return edit


def _swap_first_two(statement: dict[str, Any]) -> None:
    res = statement["predicate"]["resources"]
    res[0], res[1] = res[1], res[0]


def _duplicate_first(statement: dict[str, Any]) -> None:
    res = statement["predicate"]["resources"]
    res.insert(0, dict(res[0]))


def _second_subject(statement: dict[str, Any]) -> None:
    statement["subject"].append(dict(statement["subject"][0]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("predicateType", "https://example.com/other/v1"), "unsupported predicate type"),
        (_set("_type", "https://in-toto.io/Statement/v0.1"), "unsupported statement type"),
        (_set("subject.0.digest.sha256", "ab" * 32), "does not match its files"),
        (_set("subject.0.digest", {"sha512": "ab" * 64}), "exactly one lowercase sha256"),
        (_second_subject, "exactly one subject"),
        (_set("predicate.resources.0.name", "../escape"), r"unsafe signed path '\.\./escape'"),
        (_set("predicate.resources.0.name", "/abs"), "absolute path"),
        (_set("predicate.resources.0.name", "a\x00b"), "NUL"),
        (_set("predicate.resources.0.algorithm", "blake2"), "unsupported digest algorithm"),
        (_set("predicate.resources.0.digest", "AB" * 32), "lowercase sha256"),
        (_set("predicate.resources", []), "covers no files"),
        (_swap_first_two, "out of order"),
        (_duplicate_first, "duplicated"),
        (_set("predicate.serialization.method", "shards"), "unsupported serialization method"),
        (_set("predicate.serialization.hash_type", "blake3"), "unsupported hash type"),
        (_set("predicate.serialization.allow_symlinks", True), "symbolic links"),
        (_set("predicate.serialization.shard_size", 10), "unsupported serialization parameter"),
        (_set("predicate.resources.0.name", "model.sig"), "covers its own file"),
        (_set("predicate", "nope"), "predicate is not a dict"),
    ],
)
def test_signed_but_invalid_statements_are_refused(
    bundle: Path,
    key: ec.EllipticCurvePrivateKey,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    """Validly signed by a trusted key, yet not a statement we accept."""
    sig = _sig_json(sign_bundle(bundle, key))
    statement = _payload(sig)
    edit(statement)
    with pytest.raises(SignatureError, match=message) as info:
        verify_signature(_resign(sig, key, statement), [key.public_key()])
    assert "\n" not in str(info.value)


def test_independently_signed_statement_is_accepted(
    bundle: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    """Our verifier does not depend on our own JSON layout (compact, other key order)."""
    sig = _sig_json(sign_bundle(bundle, key))
    statement = _payload(sig)
    statement["predicate"]["serialization"].pop("ignore_paths")
    manifest = verify_signature(_resign(sig, key, statement), [key.public_key()])
    assert manifest.subject_name == "det"


def test_wrong_payload_type_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    sig = _sig_json(sign_bundle(bundle, key))
    with pytest.raises(SignatureError, match="unsupported payload type"):
        verify_signature(_resign(sig, key, payload_type="application/json"), [key.public_key()])


def _edit_sig(edit: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def apply(raw: bytes) -> bytes:
        sig = json.loads(raw)
        edit(sig)
        return json.dumps(sig).encode()

    return apply


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: b"", "not valid JSON"),
        (lambda raw: raw[:-10], "not valid JSON"),
        (lambda raw: b"[]", "not a JSON object"),
        (lambda raw: b"\xff\xfe", "not valid JSON"),
        (_edit_sig(lambda s: s.pop("dsseEnvelope")), "dsseEnvelope is missing"),
        (_edit_sig(lambda s: s.update(mediaType="application/json")), "media type"),
        (
            _edit_sig(lambda s: s["verificationMaterial"].pop("publicKey")),
            "not made with a key",
        ),
        (
            _edit_sig(lambda s: s["dsseEnvelope"].update(payload="!!not base64!!")),
            "payload is not valid base64",
        ),
        (_edit_sig(lambda s: s["dsseEnvelope"].update(signatures=[])), "exactly one signature"),
        (
            _edit_sig(lambda s: s["dsseEnvelope"]["signatures"].append({"sig": "AAAA"})),
            "exactly one signature",
        ),
        (
            _edit_sig(lambda s: s["dsseEnvelope"]["signatures"][0].update(sig="AAAA")),
            "does not verify",
        ),
        (lambda raw: raw.replace(b'"mediaType"', b'"mediaType":"x","mediaType"'), "duplicate"),
    ],
)
def test_malformed_signatures_are_signature_errors(
    bundle: Path,
    key: ec.EllipticCurvePrivateKey,
    mangle: Callable[[bytes], bytes],
    message: str,
) -> None:
    raw = sign_bundle(bundle, key).read_bytes()
    with pytest.raises(SignatureError, match=message) as info:
        verify_signature(mangle(raw), [key.public_key()])
    assert "\n" not in str(info.value)


def test_missing_or_linked_signature_file(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(SignatureError, match=r"model\.sig is missing"):
        verify_bundle(bundle, [key.public_key()])
    other = bundle.parent / "elsewhere.sig"
    sign_bundle(bundle, key).rename(other)
    (bundle / SIGNATURE_FILENAME).symlink_to(other)
    with pytest.raises(SignatureError, match="symbolic links"):
        verify_bundle(bundle, [key.public_key()])


def test_signature_of_another_bundle_does_not_fit(
    tmp_path: Path, bundle: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    other = tmp_path / "other"
    build_bundle(
        affine_model(tmp_path / "o" / "model.onnx", scale=3.0), other, name="o", version="1"
    )
    sign_bundle(other, key)
    (bundle / SIGNATURE_FILENAME).write_bytes((other / SIGNATURE_FILENAME).read_bytes())
    with pytest.raises((SignatureError, BundleError)):
        verify_bundle(bundle, [key.public_key()])


def test_sign_needs_valid_metadata_and_files(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="nothing to sign"):
        sign_bundle(empty, key)
    (empty / "edgefleet.json").write_text("{}")
    with pytest.raises(BundleError, match="malformed"):
        sign_bundle(empty, key)
    assert not (empty / SIGNATURE_FILENAME).exists()


def test_sign_plain_directory_uses_its_name(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    model_dir = tmp_path / "resnet"
    affine_model(model_dir / "model.onnx")
    sign_bundle(model_dir, key)
    assert verify_bundle(model_dir, [key.public_key()]).subject_name == "resnet"


def test_sign_with_wrong_curve_is_refused(bundle: Path) -> None:
    with pytest.raises(KeyFileError, match="secp384r1"):
        sign_bundle(bundle, ec.generate_private_key(ec.SECP384R1()))
