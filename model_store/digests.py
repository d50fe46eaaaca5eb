"""SHA-256 helpers: file digests, digest validation and the bundle (subject) digest."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TypeGuard

from model_store.errors import BundleError, InvalidDigest
from model_store.paths import open_regular_file

CHUNK_SIZE = 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: object) -> TypeGuard[str]:
    """True for a string of exactly 64 lowercase hexadecimal characters."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def check_sha256_hex(value: object) -> str:
    """Return ``value`` if it is a lowercase sha256 hex digest, else raise ``InvalidDigest``."""
    if not is_sha256_hex(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise InvalidDigest(f"invalid sha256 digest {shown!r}: expected 64 lowercase hex digits")
    return value


def _hash_fd(fd: int) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, CHUNK_SIZE):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path`` (streamed; symbolic links are followed)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return _hash_fd(fd)[0]
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def sha256_regular_file(path: Path, *, shown_as: str) -> tuple[str, int]:
    """Hex sha256 and size of a regular file that must not be a symbolic link.

    Opened with ``O_NOFOLLOW`` and checked with ``fstat`` so a file swapped for a link
    between listing and hashing is refused rather than followed.
    """
    fd = open_regular_file(path, shown_as=shown_as)
    try:
        return _hash_fd(fd)
    except OSError as exc:
        raise BundleError(f"cannot read {shown_as!r}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def bundle_digest(file_digests: Iterable[str]) -> str:
    """The in-toto subject digest: sha256 over the raw per-file digests, in order."""
    hasher = hashlib.sha256()
    for hex_digest in file_digests:
        hasher.update(bytes.fromhex(check_sha256_hex(hex_digest)))
    return hasher.hexdigest()
