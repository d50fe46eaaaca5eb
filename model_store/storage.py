"""Content-addressed artifact storage: blobs named by their sha256.

``ArtifactStore`` is the interface the control plane uses; ``model_store.s3_storage``
implements it on an S3-compatible object store. ``FilesystemArtifactStore`` (the default)
keeps blobs at
``ROOT/sha256/ab/cdef...`` (first two hex digits, then the other 62). Writes stream to a
temporary file under ``ROOT/tmp``, are hashed on the way, fsynced and renamed into
place, so a blob is either complete and correct or absent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from model_store.digests import CHUNK_SIZE, check_sha256_hex
from model_store.errors import BlobDigestMismatch, BlobNotFound, BlobTooLarge, StorageError

logger = logging.getLogger(__name__)


@runtime_checkable
class ArtifactStore(Protocol):
    """Where bundle files live, by sha256 (lowercase hex)."""

    def put_stream(
        self,
        chunks: Iterable[bytes],
        expected_sha256: str | None = None,
        *,
        max_size: int | None = None,
    ) -> tuple[str, int]: ...

    def put_file(self, path: Path) -> tuple[str, int]: ...

    def has(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def presigned_url(self, sha256: str, ttl_s: int) -> str | None:
        """A URL devices may GET the blob from directly for ``ttl_s`` seconds, or None
        if the control plane serves the bytes itself."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemArtifactStore:
    """``ArtifactStore`` on a local directory (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create artifact store {root}: {exc.strerror or exc}"
            ) from exc

    def path(self, sha256: str) -> Path:
        """Where the blob lives (whether or not it exists). ``InvalidDigest`` for bad hex."""
        digest = check_sha256_hex(sha256)
        return self._blobs / digest[:2] / digest[2:]

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(f"blob sha256:{sha256} not found") from exc

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(f"blob sha256:{sha256} not found") from exc

    def presigned_url(self, sha256: str, ttl_s: int) -> str | None:
        """None: the control plane serves these blobs itself."""
        check_sha256_hex(sha256)
        return None

    def put_stream(
        self,
        chunks: Iterable[bytes],
        expected_sha256: str | None = None,
        *,
        max_size: int | None = None,
    ) -> tuple[str, int]:
        """Store the streamed bytes; return ``(sha256 hex, size)``.

        ``BlobDigestMismatch`` if they do not hash to ``expected_sha256`` and
        ``BlobTooLarge`` past ``max_size`` bytes; either way nothing is left behind.
        Storing a blob that is already there is a no-op that returns the same answer.
        """
        if expected_sha256 is not None:
            check_sha256_hex(expected_sha256)
        hasher = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(prefix="put-", dir=self._tmp)
        except OSError as exc:
            raise StorageError(f"cannot write to {self._tmp}: {exc.strerror or exc}") from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:  # errors of the caller's source propagate unchanged
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise BlobTooLarge(f"blob is larger than the limit of {max_size} bytes")
                    hasher.update(chunk)
                    self._io(handle.write, chunk)
                self._io(handle.flush)
                self._io(os.fsync, handle.fileno())
            digest = hasher.hexdigest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise BlobDigestMismatch(
                    f"blob digest mismatch: expected sha256:{expected_sha256}, got sha256:{digest}"
                )
            final = self.path(digest)
            if final.is_file():
                tmp.unlink()
                return digest, size
            self._io(self._install, tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        logger.info("stored blob sha256:%s (%d bytes)", digest, size)
        return digest, size

    def _io(self, operation: Callable[..., object], *args: Any) -> None:
        """Run a storage-side I/O step; its ``OSError`` becomes ``StorageError``."""
        try:
            operation(*args)
        except OSError as exc:
            raise StorageError(f"cannot store blob in {self.root}: {exc.strerror or exc}") from exc

    @staticmethod
    def _install(tmp: Path, final: Path) -> None:
        final.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a copy of the file at ``path``."""
        try:
            with Path(path).open("rb") as handle:
                return self.put_stream(iter(lambda: handle.read(CHUNK_SIZE), b""))
        except OSError as exc:  # opening; put_stream translates its own errors
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
