"""Sign a bundle and verify its signature (OpenSSF model signing, "key" method).

The signature file ``model.sig`` is what upstream ``model_signing sign key`` writes and
what ``model_signing verify key`` checks: see ``envelope`` (Sigstore bundle + DSSE) and
``statement`` (in-toto). ECDSA P-256 with SHA-256 over the DSSE PAE; DER signature.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from model_store.bundle import bundle_files, list_bundle_paths
from model_store.digests import sha256_regular_file
from model_store.envelope import MAX_SIGNATURE_BYTES, Envelope, decode_bundle, encode_bundle, pae
from model_store.errors import BundleError, SignatureError
from model_store.keys import key_hint, key_id, require_p256, short_key_id
from model_store.metadata import load_metadata
from model_store.paths import METADATA_FILENAME, SIGNATURE_FILENAME, read_small_file
from model_store.statement import ManifestEntry, SignedManifest, build_statement, parse_statement

logger = logging.getLogger(__name__)

_ECDSA = ec.ECDSA(hashes.SHA256())
_LISTED = 5


def _subject_name(bundle_dir: Path, paths: set[str]) -> str:
    """The bundle's model name from ``edgefleet.json``, else the directory name (upstream)."""
    if METADATA_FILENAME not in paths:
        return bundle_dir.resolve().name
    metadata = load_metadata(bundle_dir)
    if metadata.model_file not in paths:
        raise BundleError(f"{METADATA_FILENAME} names {metadata.model_file!r}, which is missing")
    return metadata.name


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sign_bundle(bundle_dir: Path, private_key: ec.EllipticCurvePrivateKey) -> Path:
    """Sign every file of ``bundle_dir`` (except ``model.sig``) and write ``model.sig``.

    If the directory holds ``edgefleet.json`` it must be valid; its ``name`` becomes the
    in-toto subject name. Returns the signature's path.
    """
    require_p256(private_key, "the signing key")
    files = bundle_files(bundle_dir)
    if not files:
        raise BundleError(f"nothing to sign in {bundle_dir}")
    subject = _subject_name(bundle_dir, {f.path for f in files})
    entries = [ManifestEntry(path=f.path, sha256=f.sha256) for f in files]
    payload = build_statement(subject, entries)
    signature = private_key.sign(pae(payload), _ECDSA)
    public_key = private_key.public_key()
    path = bundle_dir / SIGNATURE_FILENAME
    try:
        _write_atomically(
            path, encode_bundle(payload, signature, key_hint(public_key), key_id(public_key))
        )
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from exc
    logger.info(
        "signed %s (%d files) with key %s", bundle_dir, len(files), short_key_id(key_id(public_key))
    )
    return path


def _untrusted(envelope: Envelope) -> SignatureError:
    """The refusal of a signature by no trusted key, naming the signer by its key id (as
    ``edgectl keys create`` and the trust document do) when the signature says it."""
    if envelope.key_id is not None:
        return SignatureError(
            f"signed by an untrusted key (key id {short_key_id(envelope.key_id)})"
        )
    hint = envelope.key_hint or ""
    return SignatureError(
        "signed by an untrusted key (the signature names no key id: made by another tool; "
        f"its key hint, sha256 of the public key PEM, is {hint[:16]})"
    )


def _verifying_key(
    envelope: Envelope, trusted_keys: Sequence[ec.EllipticCurvePublicKey]
) -> ec.EllipticCurvePublicKey:
    if not trusted_keys:
        raise SignatureError("no trusted keys to verify the signature against")
    for key in trusted_keys:
        require_p256(key, "a trusted key")
    hint, kid = envelope.key_hint, envelope.key_id
    candidates = [
        k
        for k in trusted_keys
        if (hint is None or key_hint(k) == hint) and (kid is None or key_id(k) == kid)
    ]
    if not candidates:
        raise _untrusted(envelope)
    payload, signature = envelope.payload, envelope.signature
    message = pae(payload)
    for key in candidates:
        try:
            key.verify(signature, message, _ECDSA)
        except (InvalidSignature, ValueError):
            continue
        return key
    raise SignatureError("signature does not verify against any trusted key")


def verify_signature(
    signature: bytes, trusted_keys: Sequence[ec.EllipticCurvePublicKey]
) -> SignedManifest:
    """Verify a ``model.sig`` against any of ``trusted_keys``; return what it vouches for.

    Checks the Sigstore bundle and DSSE structure, the ECDSA signature, the payload and
    statement types, the predicate, and that the subject digest matches the signed files'
    digests. Does not look at any file. ``SignatureError`` on any failure.
    """
    envelope = decode_bundle(signature)
    key = _verifying_key(envelope, trusted_keys)
    subject_name, digest, entries = parse_statement(envelope.payload)
    return SignedManifest(
        subject_name=subject_name, bundle_digest=digest, files=entries, key_id=key_id(key)
    )


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def verify_bundle(
    bundle_dir: Path, trusted_keys: Sequence[ec.EllipticCurvePublicKey]
) -> SignedManifest:
    """Verify ``bundle_dir/model.sig`` and that the directory holds exactly the signed files.

    ``SignatureError`` if the signature is missing, bad or untrusted, or a file's sha256
    differs from the signed one; ``BundleError`` if a file is missing, extra or unsafe.
    """
    raw = read_small_file(
        bundle_dir / SIGNATURE_FILENAME,
        shown_as=str(bundle_dir / SIGNATURE_FILENAME),
        limit=MAX_SIGNATURE_BYTES,
        error=SignatureError,
    )
    manifest = verify_signature(raw, trusted_keys)
    on_disk = dict(list_bundle_paths(bundle_dir))
    signed = {entry.path: entry.sha256 for entry in manifest.files}
    extra = [p for p in on_disk if p not in signed]
    if extra:
        raise BundleError(
            f"{bundle_dir} holds files the signature does not cover: {_listing(extra)}"
        )
    missing = [p for p in signed if p not in on_disk]
    if missing:
        raise BundleError(f"{bundle_dir} lacks signed files: {_listing(missing)}")
    for path, expected in signed.items():
        actual, _ = sha256_regular_file(on_disk[path], shown_as=path)
        if actual != expected:
            raise SignatureError(
                f"{path!r} does not match its signature (sha256 {actual}, signed {expected})"
            )
    logger.info(
        "verified %s: %d files, digest %s, key %s",
        bundle_dir,
        len(signed),
        manifest.bundle_digest,
        short_key_id(manifest.key_id),
    )
    return manifest
