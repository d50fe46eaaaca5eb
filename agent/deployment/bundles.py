"""The content-addressed bundle cache: staging, verification and atomic install.

Layout under ``data_dir``::

    staging/<bundle_digest>/   files being downloaded (``agent.deployment.staging``):
                               kept across a transient failure or a restart to resume,
                               removed on a permanent failure, on ``StorageFull`` and
                               when the bundle is installed
    models/<bundle_digest>/    installed, verified bundles (kept for rollback)

Order of trust, for one assignment of a verified deployment command:

1. the declared sizes add up: ``signature.size + sum(files) == size`` (else refused
   before any download), and the bytes not staged yet fit in the free space of the
   staging filesystem (else ``StorageFull`` before any download); one ``Budget`` (total
   deadline + stall timeout) covers the whole bundle; the free space must also keep a
   small reserve (``fit.disk_reserve``);
2. the signature is downloaded and verified against the release keys the current trust
   document certifies (revoked ones excluded); its subject digest must be the assigned
   ``bundle_digest`` and its file list must equal the assignment's (path + sha256);
3. ``edgefleet.json`` is downloaded first (its digest is in the signed manifest) and the
   bundle's hardware constraints are checked (``agent.selection.constraints``): a bundle this host
   cannot run is refused before any model file is downloaded, and so is one whose declared
   memory does not fit beside the device's other models (``fit``, the caller's check);
4. staging keeps only the signed paths from an earlier attempt; the other files are
   downloaded or resumed (each bounded by its declared size and digest), and the whole
   staged bundle is verified again before it is moved into ``models/``.

Writing to staging: ENOSPC / EDQUOT raise ``StorageFull`` (transient, since space may be
freed; the partial files are removed at once); any other ``OSError`` is a permanent
``DownloadError``. Models already installed are never touched by a download.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.deployment.fetch import BlobFetcher
from agent.deployment.staging import Staging, remove_staging
from agent.deployment.verifying import BundleVerifier
from agent.errors import (
    DeploymentError,
    DownloadError,
    StorageFull,
    TransientDownloadError,
    UnmetConstraints,
    VerificationError,
)
from model_store.errors import ModelStoreError
from model_store.metadata import BundleMetadata, load_metadata, parse_metadata
from model_store.paths import METADATA_FILENAME, SIGNATURE_FILENAME
from protocol import ModelAssignment

logger = logging.getLogger(__name__)

#: why a bundle cannot run on this host (one line per unmet constraint; empty: it can)
ConstraintCheck = Callable[[BundleMetadata], list[str]]
#: raises (a permanent ``DeploymentError``) if the bundle may not be installed here
MetadataCheck = Callable[[BundleMetadata], None]


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


def check_declared_size(assignment: ModelAssignment) -> None:
    """VerificationError unless the signature and file sizes add up to ``size``."""
    total = assignment.signature.size + sum(f.size for f in assignment.files)
    if total != assignment.size:
        raise VerificationError(
            f"declared bundle size {assignment.size} differs from its files' total {total}"
        )


class BundleCache:
    def __init__(
        self,
        data_dir: Path,
        verifier: BundleVerifier,
        fetcher: BlobFetcher,
        *,
        unmet_constraints: ConstraintCheck = lambda metadata: [],
        disk_reserve_mb: int | None = 0,
    ) -> None:
        """``verifier`` checks signatures with the current trust document's release keys
        (the keeper, ``agent.keeper``);
        ``disk_reserve_mb``: what a download leaves free (``fit.disk_reserve``)."""
        self._disk_reserve_mb = disk_reserve_mb
        self.staging_root = data_dir / "staging"
        self.models_root = data_dir / "models"
        self._verifier = verifier
        self._fetcher = fetcher
        self._unmet = unmet_constraints

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

    def check_still_trusted(self, digest: str) -> None:
        """VerificationError unless the installed bundle's signature still verifies against
        the CURRENT trust document (its files were hashed at install; a revoked release
        key must stop the bundle even though its bytes did not change)."""
        signature = self.model_dir(digest) / SIGNATURE_FILENAME
        try:
            manifest = self._verifier.verify_signature(signature.read_bytes(), fresh=False)
        except OSError as exc:
            raise VerificationError(f"bundle {digest[:12]}: cannot read its signature") from exc
        except ModelStoreError as exc:
            raise VerificationError(f"bundle {digest[:12]} is no longer trusted: {exc}") from exc
        if manifest.bundle_digest != digest:
            raise VerificationError(f"bundle {digest[:12]}: its signature names another bundle")

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

    def check_constraints(self, metadata: BundleMetadata) -> None:
        """UnmetConstraints (permanent) if this host cannot run the bundle."""
        unmet = self._unmet(metadata)
        if unmet:
            raise UnmetConstraints(f"cannot meet bundle constraints: {'; '.join(unmet)}")

    def download(
        self, assignment: ModelAssignment, *, fits: MetadataCheck = lambda metadata: None
    ) -> Path:
        """Sizes, free space, signature, file list, metadata + constraints (and ``fits``,
        which raises if the bundle does not fit the device), then the files, into
        staging, reusing what an earlier attempt left there; the staging directory.

        A permanent failure removes the staging directory; a transient one keeps it for
        the next attempt to resume, except ``StorageFull`` (its partial files are removed).
        """
        a = assignment
        check_declared_size(a)
        staging, label = Staging(self.staging_root, a.bundle_digest), f"{a.name} {a.version}"
        try:
            need = a.size - staging.staged_bytes(a.files)
            staging.check_space(need, label, reserve_mb=self._disk_reserve_mb)
            self._download(a, staging, fits)
        except OSError as exc:  # writing to staging failed
            self.discard_staging(a.bundle_digest)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise staging.full(label, a.size, exc.errno) from exc
            where = f" ({exc.filename})" if exc.filename else ""
            raise DownloadError(f"cannot stage {label}: {exc.strerror}{where}") from exc
        except DeploymentError as exc:
            if not isinstance(exc, TransientDownloadError) or isinstance(exc, StorageFull):
                self.discard_staging(a.bundle_digest)
            raise
        return staging.path

    def _download(self, a: ModelAssignment, staging: Staging, fits: MetadataCheck) -> None:
        budget = self._fetcher.budget()
        signature = self._fetcher.fetch_bytes(a.signature, budget)
        try:
            # new bytes need a current (unexpired) trust document
            manifest = self._verifier.verify_signature(signature, fresh=True)
        except ModelStoreError as exc:
            raise VerificationError(f"signature rejected: {exc}") from exc
        if manifest.bundle_digest != a.bundle_digest:
            raise VerificationError(
                f"signature is for bundle {manifest.bundle_digest[:12]}, not {a.bundle_digest[:12]}"
            )
        signed = {(e.path, e.sha256) for e in manifest.files}
        declared = {(check_bundle_path(f.path), f.sha256) for f in a.files}
        if signed != declared or len(declared) != len(a.files):
            diff = sorted(p for p, _ in signed ^ declared) or ["duplicate paths"]
            raise VerificationError(f"file list differs from the signed manifest at {diff[0]!r}")
        meta_ref = next((f for f in a.files if f.path == METADATA_FILENAME), None)
        if meta_ref is None:
            raise VerificationError(f"bundle has no {METADATA_FILENAME}")
        raw_meta = self._fetcher.fetch_bytes(meta_ref, budget)
        try:
            metadata = parse_metadata(raw_meta)
        except ModelStoreError as exc:
            raise VerificationError(f"bundle metadata: {exc}") from exc
        if (metadata.name, metadata.version) != (a.name, a.version):
            raise VerificationError(
                f"bundle holds {metadata.name} {metadata.version}, not {a.name} {a.version}"
            )
        self.check_constraints(metadata)
        fits(metadata)
        with staging:  # only the signed paths (and their .part files) survive from before
            staging.prune(f.path for f in a.files)
            staging.write_file(METADATA_FILENAME, raw_meta)
            for ref in a.files:
                if ref is not meta_ref:
                    self._fetcher.fetch_to(ref, staging, budget)
            staging.write_file(SIGNATURE_FILENAME, signature)

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

    def verify_staged(self, digest: str) -> Path:
        """Verify the staged bundle (signature + every digest); its staging directory."""
        staging = self.staging_dir(digest)
        self._verify_dir(staging, digest)
        return staging

    def install_staged(self, digest: str) -> Path:
        """Move a verified staged bundle into ``models/<digest>`` (one atomic rename)."""
        staging, target = self.staging_dir(digest), self.model_dir(digest)
        self.models_root.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        os.utime(target)  # garbage collection keeps the most recently installed
        _fsync_dir(self.models_root)
        return target

    def discard_staging(self, digest: str) -> None:
        """Remove ``staging/<digest>`` and everything in it (no symlink is followed)."""
        try:
            remove_staging(self.staging_root, digest)
        except OSError as exc:
            logger.warning("cannot remove staging/%s: %s", digest[:12], exc.strerror)

    def _verify_dir(self, bundle_dir: Path, digest: str) -> None:
        try:
            manifest = self._verifier.verify_bundle(bundle_dir)
        except ModelStoreError as exc:
            raise VerificationError(f"bundle rejected: {exc}") from exc
        if manifest.bundle_digest != digest:
            raise VerificationError(
                f"bundle digest {manifest.bundle_digest[:12]} differs from {digest[:12]}"
            )


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a crash after this keeps it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_metadata(bundle_dir: Path) -> Any:
    """BundleMetadata of a verified bundle; VerificationError if it cannot be read."""
    try:
        return load_metadata(bundle_dir)
    except ModelStoreError as exc:
        raise VerificationError(f"bundle metadata: {exc}") from exc
