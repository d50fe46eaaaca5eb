"""Bundle downloads of light simulated devices: real requests, real checks.

Every device downloads every bundle it is told to install, from the control plane (or
wherever the signed command points), through the agent's own ``BlobFetcher``: bounded by
the declared sizes and a deadline, each file checked against its signed sha256. What
may be shared is what happens after the bytes arrived:

- ``shared=True`` (the default): one verified cache per process. The first device to
  install a bundle does what a real agent does (``BundleCache.download`` into staging:
  signature verified with that device's trust document, file list checked against it,
  then ``verify_and_install``); every other device still fetches the signature and
  verifies it with its own trust document, and still downloads every file, checking its
  digest as it streams, but keeps no copy. So the control plane sees the real fan-out
  (one download per device) while the disk holds each bundle once.
- ``shared=False``: every device has its own ``BundleCache`` in its data directory and
  installs every bundle there, exactly as a real agent does.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from agent.deployment.bundles import BundleCache, check_bundle_path, check_declared_size
from agent.deployment.fetch import BlobFetcher
from agent.errors import VerificationError
from agent.keeper.local import TrustedBundles
from model_store import ModelStoreError, TrustDocument, verify_signature_trusted
from protocol import ModelAssignment
from protocol.fields import utcnow

#: Where a process's shared cache lives, under the fleet's data directory.
SHARED_DIR = "_shared-bundles"


class DigestSink:
    """Keeps only the running sha256 and the size of what it was given."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def reset(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class LightBundles:
    """Installs bundles for the light devices of one process (see the module text)."""

    def __init__(self, data_root: Path, fetcher: BlobFetcher, *, shared: bool = True) -> None:
        self.shared = shared
        self._root = data_root
        self._fetcher = fetcher
        self._lock = threading.Lock()
        self._digest_locks: dict[str, threading.Lock] = {}
        self._installed: set[str] = set()  # verified and installed in the shared cache
        #: bundle downloads started by devices of this process (one per device and bundle)
        self.downloads = 0

    def install(
        self, a: ModelAssignment, trust: Callable[[], TrustDocument], device_dir: Path
    ) -> Path:
        """Download ``a`` for one device and check it; the verified bundle's directory.
        DeploymentError (one line; TransientDownloadError if worth retrying)."""
        with self._lock:
            self.downloads += 1
        if not self.shared:
            return self._full_install(
                BundleCache(device_dir, TrustedBundles(trust), self._fetcher), a
            )
        cache = BundleCache(self._root / SHARED_DIR, TrustedBundles(trust), self._fetcher)
        with self._digest_lock(a.bundle_digest):
            first = a.bundle_digest not in self._installed
            if first:
                path = self._full_install(cache, a)
                self._installed.add(a.bundle_digest)
                return path
        self._download_checked(a, trust)
        return cache.model_dir(a.bundle_digest)

    def reuse(
        self, a: ModelAssignment, trust: Callable[[], TrustDocument], device_dir: Path
    ) -> None:
        """A bundle the device installed before (an instant rollback): no download, its
        signature checked against the device's current trust, as a real agent does."""
        root = self._root / SHARED_DIR if self.shared else device_dir
        BundleCache(root, TrustedBundles(trust), self._fetcher).check_still_trusted(a.bundle_digest)

    def _full_install(self, cache: BundleCache, a: ModelAssignment) -> Path:
        cache.download(a)
        return cache.verify_and_install(a.bundle_digest)

    def _download_checked(self, a: ModelAssignment, trust: Callable[[], TrustDocument]) -> None:
        """What a device does that finds the bundle already in the shared cache: the
        signature verified with its own trust, every file downloaded and digest-checked."""
        check_declared_size(a)
        budget = self._fetcher.budget()
        signature = self._fetcher.fetch_bytes(a.signature, budget)
        try:
            manifest = verify_signature_trusted(signature, trust(), now=utcnow())
        except ModelStoreError as exc:
            raise VerificationError(f"signature rejected: {exc}") from exc
        signed = {(e.path, e.sha256) for e in manifest.files}
        declared = {(check_bundle_path(f.path), f.sha256) for f in a.files}
        if manifest.bundle_digest != a.bundle_digest or signed != declared:
            raise VerificationError(f"bundle {a.bundle_digest[:12]}: differs from its signature")
        for ref in a.files:
            self._fetcher.fetch_checked(ref, DigestSink(), budget)

    def _digest_lock(self, digest: str) -> threading.Lock:
        with self._lock:
            return self._digest_locks.setdefault(digest, threading.Lock())
