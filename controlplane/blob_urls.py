"""Presigned download URLs in deployment commands (an object-store blob store only).

When bundles live in an S3-compatible store, each file of a command's assignments carries
a presigned GET URL, made when the command is signed and valid for
``EDGEFLEET_BLOB_URL_TTL`` seconds (never past the command's own expiry). Devices
download from the store directly; the control plane's blob URL stays their fallback and
sends them to a fresh URL. The URLs are not part of what a device *should run*: whether a
stored command may be republished is judged on its assignments without them
(:func:`without_urls`), so URLs that age never cause a command to be signed again.
"""

from __future__ import annotations

from datetime import datetime

from model_store import ArtifactStore
from protocol import FileRef, ModelAssignment


class BlobUrls:
    """Signs the URLs of a store that has them; a no-op for the filesystem store."""

    def __init__(self, store: ArtifactStore, ttl_s: int) -> None:
        self._store = store
        self.ttl_s = ttl_s

    def located(
        self, assignments: list[ModelAssignment], *, now: datetime, expires_at: datetime
    ) -> list[ModelAssignment]:
        """``assignments`` with a URL on every file (signature included), where the store
        gives one; as they are otherwise."""
        ttl = int(min(self.ttl_s, (expires_at - now).total_seconds()))
        if ttl <= 0:
            return assignments
        out: list[ModelAssignment] = []
        for a in assignments:
            signature = self._with_url(a.signature, ttl)
            files = [self._with_url(f, ttl) for f in a.files]
            out.append(a.model_copy(update={"signature": signature, "files": files}))
        return out

    def _with_url(self, ref: FileRef, ttl: int) -> FileRef:
        url = self._store.presigned_url(ref.sha256, ttl)
        return ref if url is None else ref.model_copy(update={"url": url})


def without_urls(assignments: list[ModelAssignment]) -> list[ModelAssignment]:
    """``assignments`` with every download URL taken out (what they say to run)."""

    def bare(ref: FileRef) -> FileRef:
        return ref if ref.url is None else ref.model_copy(update={"url": None})

    return [
        a.model_copy(update={"signature": bare(a.signature), "files": [bare(f) for f in a.files]})
        for a in assignments
    ]
