"""``ArtifactStore`` on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).

Blobs live at ``s3://BUCKET/PREFIX sha256/ab/cdef...`` (the filesystem store's layout
under a key prefix). A write is streamed into a local temporary file while it is hashed;
only bytes whose sha256 is what the caller expects are uploaded, under their digest, so
an object in the bucket is always complete and correct (S3 makes an object visible only
once its upload finished). Devices download straight from the bucket with presigned GET
URLs (:meth:`S3ArtifactStore.presigned_url`): the control plane never proxies the bytes.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
a profile, an instance or pod role); they are never logged, and no error message here
carries them. Needs the ``s3`` extra (``pip install 'edgefleet[s3]'``): boto3 is imported
only when an S3 store is opened.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from model_store.digests import CHUNK_SIZE, check_sha256_hex
from model_store.errors import BlobDigestMismatch, BlobNotFound, BlobTooLarge, StorageError

logger = logging.getLogger(__name__)

#: Bytes of an upload held in memory before the temporary copy spills to disk.
SPOOL_BYTES = 8 * 1024 * 1024
#: SigV4 presigned URLs cannot live longer than a week.
MAX_URL_TTL_S = 7 * 24 * 3600
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class S3Location:
    """Where blobs go: a bucket and a key prefix (empty, or ending in ``/``)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket[/prefix]``; ValueError (one line) otherwise."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def key(self, sha256: str) -> str:
        digest = check_sha256_hex(sha256)
        return f"{self.prefix}sha256/{digest[:2]}/{digest[2:]}"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def _reason(exc: Exception) -> str:
    """One line about a boto error, without request ids or credentials."""
    code = _code(exc)
    if code:
        message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message") or ""
        return f"{code}: {message}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class S3ArtifactStore:
    """Content-addressed blobs in one bucket; ``client`` is a boto3 S3 client and
    ``presigner`` the one that signs device URLs (another endpoint, where devices reach
    the store under a different address than the control plane; default: ``client``)."""

    def __init__(self, location: S3Location, client: Any, *, presigner: Any = None) -> None:
        self.location = location
        self._client = client
        self._presigner = presigner or client
        # Blobs never change once stored, so what is known to exist stays known.
        self._sizes: dict[str, int] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        endpoint_url: str | None = None,
        public_url: str | None = None,
        region: str | None = None,
    ) -> S3ArtifactStore:
        """Open ``s3://bucket[/prefix]`` and check the bucket can be reached;
        StorageError (one line) if it cannot."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise StorageError(
                "an s3:// blob store needs boto3: pip install 'edgefleet[s3]'"
            ) from exc
        try:
            location = S3Location.parse(url)
        except ValueError as exc:
            raise StorageError(str(exc)) from exc
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        )
        session = boto3.session.Session()
        region = region or session.region_name or "us-east-1"

        def client(endpoint: str | None) -> Any:
            return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)

        store = cls(
            location,
            client(endpoint_url),
            presigner=client(public_url) if public_url else None,
        )
        store.check()
        return store

    def check(self) -> None:
        """StorageError (one line) unless the bucket exists and these credentials reach it."""
        try:
            self._client.head_bucket(Bucket=self.location.bucket)
        except Exception as exc:  # botocore's errors: ClientError, EndpointConnectionError, ...
            code = _code(exc)
            if code in ("404", "NoSuchBucket"):
                reason = f"there is no bucket {self.location.bucket!r}"
            elif code in ("403", "AccessDenied"):
                reason = "access denied (check the AWS credentials and the bucket's policy)"
            else:
                reason = _reason(exc)
            raise StorageError(f"cannot use blob store {self.location}: {reason}") from exc

    def has(self, sha256: str) -> bool:
        try:
            self.size(sha256)
        except BlobNotFound:
            return False
        return True

    def size(self, sha256: str) -> int:
        known = self._sizes.get(sha256)
        if known is not None:
            return known
        head = self._read(self._client.head_object, sha256)
        size = int(head["ContentLength"])
        self._sizes[sha256] = size
        return size

    def open(self, sha256: str) -> BinaryIO:
        """The blob as a stream (close it); ``BlobNotFound`` if absent."""
        answer = self._read(self._client.get_object, sha256)
        return cast(BinaryIO, answer["Body"])

    def _read(self, request: Callable[..., Any], sha256: str) -> Any:
        """``request`` (HEAD or GET) of the blob's object; ``BlobNotFound`` if it is absent,
        ``StorageError`` (one line) if the store cannot be read."""
        key = self.location.key(sha256)  # InvalidDigest for bad hex, before any request
        try:
            return request(Bucket=self.location.bucket, Key=key)
        except Exception as exc:  # botocore's errors
            if _code(exc) in _MISSING:
                raise BlobNotFound(f"blob sha256:{sha256} not found") from exc
            raise StorageError(f"cannot read {self.location}: {_reason(exc)}") from exc

    def presigned_url(self, sha256: str, ttl_s: int) -> str:
        """A GET URL for the blob that works without credentials for ``ttl_s`` seconds
        (signed locally: no request to the store)."""
        ttl = max(1, min(int(ttl_s), MAX_URL_TTL_S))
        try:
            url = self._presigner.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.location.bucket, "Key": self.location.key(sha256)},
                ExpiresIn=ttl,
            )
        except Exception as exc:
            raise StorageError(f"cannot sign a URL for {self.location}: {_reason(exc)}") from exc
        return str(url)

    def put_stream(
        self,
        chunks: Iterable[bytes],
        expected_sha256: str | None = None,
        *,
        max_size: int | None = None,
    ) -> tuple[str, int]:
        """Store the streamed bytes; ``(sha256 hex, size)``. The same contract as the
        filesystem store: ``BlobDigestMismatch``, ``BlobTooLarge``, nothing left behind,
        and storing a blob that is already there is a no-op."""
        if expected_sha256 is not None:
            check_sha256_hex(expected_sha256)
        hasher = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            for chunk in chunks:  # errors of the caller's source propagate unchanged
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BlobTooLarge(f"blob is larger than the limit of {max_size} bytes")
                hasher.update(chunk)
                try:
                    spool.write(chunk)
                except OSError as exc:
                    raise StorageError(f"cannot spool an upload: {exc.strerror or exc}") from exc
            digest = hasher.hexdigest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise BlobDigestMismatch(
                    f"blob digest mismatch: expected sha256:{expected_sha256}, got sha256:{digest}"
                )
            if self.has(digest):
                return digest, size
            spool.seek(0)
            try:
                self._client.upload_fileobj(
                    spool,
                    self.location.bucket,
                    self.location.key(digest),
                    ExtraArgs={"ContentType": "application/octet-stream"},
                )
            except Exception as exc:
                raise StorageError(f"cannot store blob in {self.location}: {_reason(exc)}") from exc
        self._sizes[digest] = size
        logger.info("stored blob sha256:%s (%d bytes) in %s", digest, size, self.location)
        return digest, size

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a copy of the file at ``path``."""
        try:
            with Path(path).open("rb") as handle:
                return self.put_stream(iter(lambda: handle.read(CHUNK_SIZE), b""))
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
