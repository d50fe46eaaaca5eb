"""Check a model version before it is registered: signature, manifest, blobs, metadata.

The control plane never signs bundles. It accepts a version only if ``model.sig``
verifies against a *release* key that the current trust document certifies (revoked
keys refused) and the uploaded files are exactly the signed ones, so an operator's typo
or a tampered upload is refused at the door. The agent re-verifies everything on the
device against its own trust chain; this check is not what devices trust.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controlplane.errors import BundleRejected
from controlplane.pipelines import check_uploaded_pipeline
from model_store import (
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    ArtifactStore,
    BundleMetadata,
    ModelStoreError,
    SignedManifest,
    TrustDocument,
    verify_signature_trusted,
)
from protocol import FileRef

logger = logging.getLogger(__name__)

MAX_SIGNATURE_BYTES = 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024


@dataclass(frozen=True)
class VerifiedVersion:
    """What a registered version records: the checked request plus what the signature says."""

    bundle_digest: str
    key_id: str | None
    signature: FileRef
    files: list[FileRef]
    metadata: dict[str, Any]


def _read_blob(store: ArtifactStore, ref: FileRef, *, limit: int) -> bytes:
    if ref.size > limit:
        raise BundleRejected(f"{ref.path} is {ref.size} bytes; at most {limit} are accepted")
    _check_stored(store, ref)
    try:
        with store.open(ref.sha256) as fh:
            return bytes(fh.read(limit + 1))
    except (OSError, ModelStoreError) as exc:
        raise BundleRejected(f"cannot read the stored blob of {ref.path}: {exc}") from exc


def _check_stored(store: ArtifactStore, ref: FileRef) -> None:
    if not store.has(ref.sha256):
        raise BundleRejected(
            f"blob of {ref.path} (sha256 {ref.sha256}) is not uploaded; "
            f"PUT /api/v1/blobs/sha256/{ref.sha256} first"
        )
    size = store.size(ref.sha256)
    if size != ref.size:
        raise BundleRejected(f"{ref.path} is declared as {ref.size} bytes but the blob has {size}")


def _check_manifest(manifest: SignedManifest, files: Sequence[FileRef]) -> None:
    seen: dict[str, FileRef] = {}
    for ref in files:
        if ref.path in seen:
            raise BundleRejected(f"file {ref.path!r} is listed twice")
        if ref.path == SIGNATURE_FILENAME:
            raise BundleRejected(f"{SIGNATURE_FILENAME} goes in 'signature', not in 'files'")
        seen[ref.path] = ref
    signed = {entry.path: entry.sha256 for entry in manifest.files}
    for path, ref in sorted(seen.items()):
        if path not in signed:
            raise BundleRejected(f"file {path!r} is not covered by the bundle signature")
        if signed[path] != ref.sha256:
            raise BundleRejected(
                f"sha256 of {path!r} ({ref.sha256[:12]}…) differs from the signed digest "
                f"({signed[path][:12]}…)"
            )
    missing = sorted(set(signed) - set(seen))
    if missing:
        raise BundleRejected(f"signed file {missing[0]!r} is missing from 'files'")


def _parse_metadata(raw: bytes, *, name: str, version: str) -> BundleMetadata:
    try:
        metadata = BundleMetadata.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise BundleRejected(f"{METADATA_FILENAME} is malformed: {where}: {first['msg']}") from exc
    if metadata.name != name:
        raise BundleRejected(
            f"{METADATA_FILENAME} names model {metadata.name!r}, not {name!r} as in the URL"
        )
    if metadata.version != version:
        raise BundleRejected(
            f"{METADATA_FILENAME} says version {metadata.version!r}, not {version!r}"
        )
    return metadata


def verify_version(
    store: ArtifactStore,
    trust: TrustDocument,
    *,
    name: str,
    version: str,
    signature: FileRef,
    files: Sequence[FileRef],
) -> VerifiedVersion:
    """Check an uploaded bundle against ``trust``; BundleRejected (400) with the reason."""
    if signature.path != SIGNATURE_FILENAME:
        raise BundleRejected(f"the signature file must be {SIGNATURE_FILENAME!r}")
    raw_signature = _read_blob(store, signature, limit=MAX_SIGNATURE_BYTES)
    try:
        manifest = verify_signature_trusted(raw_signature, trust)
    except ModelStoreError as exc:
        logger.info("rejected %s %s: %s", name, version, exc)
        raise BundleRejected(str(exc)) from exc
    _check_manifest(manifest, files)
    for ref in files:
        _check_stored(store, ref)
    by_path = {ref.path: ref for ref in files}
    if METADATA_FILENAME not in by_path:
        raise BundleRejected(f"the bundle has no {METADATA_FILENAME}")
    raw_metadata = _read_blob(store, by_path[METADATA_FILENAME], limit=MAX_METADATA_BYTES)
    metadata = _parse_metadata(raw_metadata, name=name, version=version)
    if metadata.model_file not in by_path:
        raise BundleRejected(f"model_file {metadata.model_file!r} is not one of the bundle's files")
    check_uploaded_pipeline(store, metadata, by_path)
    return VerifiedVersion(
        bundle_digest=manifest.bundle_digest,
        key_id=manifest.key_id,
        signature=signature,
        files=sorted(files, key=lambda f: f.path),
        metadata=metadata.model_dump(mode="json"),
    )
