"""Bounded blob downloads from the control plane: ``GET /api/v1/blobs/sha256/{hex}``.

Every download is bounded by the size the desired state declares (more bytes -> fail),
by a total deadline, and checked against the declared sha256 as it streams. A transfer
cut short is resumed with ``Range: bytes=N-`` (a few attempts). These checks only bound
the work: the bytes are trusted only after the bundle signature verifies them.

Failures that say nothing about the bytes (connection refused or reset, timeouts, the
deadline, HTTP 5xx/408/429) raise ``TransientDownloadError`` and the deployment is
retried later; refused content (too large, wrong digest, other HTTP statuses) raises
``DownloadError`` and is not.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from pathlib import Path
from typing import BinaryIO

import httpx

from agent.errors import DownloadError, TransientDownloadError
from protocol import FileRef

logger = logging.getLogger(__name__)

ATTEMPTS = 3
#: HTTP statuses that mean "try again later", not "these bytes are wrong"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_SIGNATURE_BYTES = 1 << 20


class BlobFetcher:
    """Downloads blobs by digest within a size bound and a deadline."""

    def __init__(
        self, control_plane_url: str, *, deadline_s: float, connect_timeout_s: float = 10.0
    ) -> None:
        self._base = control_plane_url.rstrip("/")
        self._deadline_s = deadline_s
        self._client = httpx.Client(
            timeout=httpx.Timeout(30.0, connect=connect_timeout_s), follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def url_for(self, sha256: str) -> str:
        return f"{self._base}/api/v1/blobs/sha256/{sha256}"

    def fetch_bytes(self, ref: FileRef, *, max_size: int = MAX_SIGNATURE_BYTES) -> bytes:
        if ref.size > max_size:
            raise DownloadError(f"{ref.path}: declared size {ref.size} exceeds {max_size} bytes")
        tmp = io.BytesIO()
        self._fetch(ref, tmp)
        return tmp.getvalue()

    def fetch_to(self, ref: FileRef, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as fh:
            self._fetch(ref, fh)

    def _fetch(self, ref: FileRef, out: BinaryIO) -> None:
        deadline = time.monotonic() + self._deadline_s
        digest = hashlib.sha256()
        received = 0
        for attempt in range(1, ATTEMPTS + 1):
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                with self._client.stream("GET", self.url_for(ref.sha256), headers=headers) as resp:
                    if resp.status_code == 200 and received:  # server ignored Range: restart
                        out.seek(0)
                        out.truncate()
                        digest, received = hashlib.sha256(), 0
                    elif resp.status_code not in (200, 206):
                        error = (
                            TransientDownloadError
                            if resp.status_code in TRANSIENT_STATUSES
                            else DownloadError
                        )
                        raise error(f"{ref.path}: HTTP {resp.status_code} from control plane")
                    for chunk in resp.iter_bytes():
                        received += len(chunk)
                        if received > ref.size:
                            raise DownloadError(
                                f"{ref.path}: more than the declared {ref.size} bytes"
                            )
                        if time.monotonic() > deadline:
                            raise TransientDownloadError(
                                f"{ref.path}: download exceeded {self._deadline_s:g}s"
                            )
                        digest.update(chunk)
                        out.write(chunk)
                break
            except httpx.HTTPError as exc:
                if attempt == ATTEMPTS or time.monotonic() > deadline:
                    raise TransientDownloadError(
                        f"{ref.path}: {type(exc).__name__}: {exc}"
                    ) from exc
                logger.info(
                    "%s: %s after %d bytes; resuming", ref.path, type(exc).__name__, received
                )
                time.sleep(min(2.0, 0.25 * attempt))
        if received != ref.size:
            raise DownloadError(f"{ref.path}: got {received} bytes, declared {ref.size}")
        if digest.hexdigest() != ref.sha256:
            raise DownloadError(f"{ref.path}: sha256 differs from the declared digest")
