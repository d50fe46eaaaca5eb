"""The content-addressed bundle cache: staging, verification and atomic install.

Layout under ``data_dir``::

    staging/<bundle_digest>/   files being downloaded (removed on any failure)
    models/<bundle_digest>/    installed, verified bundles (kept for rollback)

Order of trust: the signature is downloaded and verified with the trusted keys first;
the desired state's file list must equal the signed manifest (path + sha256); only then
are files downloaded, and the whole staged bundle is verified again (every digest)
before it is moved into ``models/``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from agent.deployment.fetch import BlobFetcher
from agent.errors import VerificationError
from model_store import (
    SIGNATURE_FILENAME,
    ModelStoreError,
    load_metadata,
    verify_bundle,
    verify_signature,
)
from protocol import ModelAssignment

logger = logging.getLogger(__name__)


def check_bundle_path(path: str) -> str:
    """VerificationError unless ``path`` is a safe relative bundle path."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
        or path == SIGNATURE_FILENAME
    ):
        raise VerificationError(f"unsafe bundle path {path!r}")
    return path


class BundleCache:
    def __init__(self, data_dir: Path, trusted_keys: list[Any], fetcher: BlobFetcher) -> None:
        self.staging_root = data_dir / "staging"
        self.models_root = data_dir / "models"
        self._keys = trusted_keys
        self._fetcher = fetcher

    def staging_dir(self, digest: str) -> Path:
        return self.staging_root / digest

    def model_dir(self, digest: str) -> Path:
        return self.models_root / digest

    def verify_installed(self, digest: str) -> Path:
        """Re-verify an installed bundle (signature + every file); its directory."""
        bundle_dir = self.model_dir(digest)
        if not bundle_dir.is_dir():
            raise VerificationError(f"bundle {digest[:12]} is not installed")
        self._verify_dir(bundle_dir, digest)
        return bundle_dir

    def cached(self, digest: str) -> Path | None:
        """The installed bundle if present and still valid, else None (bad copy removed)."""
        if not self.model_dir(digest).is_dir():
            return None
        try:
            return self.verify_installed(digest)
        except VerificationError as exc:
            logger.warning("cached bundle %s is invalid, downloading again: %s", digest[:12], exc)
            shutil.rmtree(self.model_dir(digest), ignore_errors=True)
            return None

    def download(self, assignment: ModelAssignment) -> Path:
        """Fetch + verify the signature, check the file list, download into staging."""
        signature = self._fetcher.fetch_bytes(assignment.signature)
        try:
            manifest = verify_signature(signature, self._keys)
        except ModelStoreError as exc:
            raise VerificationError(f"signature rejected: {exc}") from exc
        if manifest.bundle_digest != assignment.bundle_digest:
            raise VerificationError(
                f"signature is for bundle {manifest.bundle_digest[:12]}, "
                f"not {assignment.bundle_digest[:12]}"
            )
        signed = {(e.path, e.sha256) for e in manifest.files}
        declared = {(check_bundle_path(f.path), f.sha256) for f in assignment.files}
        if signed != declared or len(declared) != len(assignment.files):
            diff = sorted(p for p, _ in signed ^ declared) or ["duplicate paths"]
            raise VerificationError(f"file list differs from the signed manifest at {diff[0]!r}")
        staging = self.staging_dir(assignment.bundle_digest)
        self.discard_staging(assignment.bundle_digest)
        staging.mkdir(parents=True)
        for ref in assignment.files:
            self._fetcher.fetch_to(ref, staging / ref.path)
        (staging / SIGNATURE_FILENAME).write_bytes(signature)
        return staging

    def verify_and_install(self, digest: str) -> Path:
        """Verify the staged bundle (every digest), then move it into ``models/``."""
        staging = self.staging_dir(digest)
        self._verify_dir(staging, digest)
        target = self.model_dir(digest)
        self.models_root.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        return target

    def discard_staging(self, digest: str) -> None:
        shutil.rmtree(self.staging_dir(digest), ignore_errors=True)

    def _verify_dir(self, bundle_dir: Path, digest: str) -> None:
        try:
            manifest = verify_bundle(bundle_dir, self._keys)
        except ModelStoreError as exc:
            raise VerificationError(f"bundle rejected: {exc}") from exc
        if manifest.bundle_digest != digest:
            raise VerificationError(
                f"bundle digest {manifest.bundle_digest[:12]} differs from {digest[:12]}"
            )


def read_metadata(bundle_dir: Path) -> Any:
    """BundleMetadata of a verified bundle; VerificationError if it cannot be read."""
    try:
        return load_metadata(bundle_dir)
    except ModelStoreError as exc:
        raise VerificationError(f"bundle metadata: {exc}") from exc
