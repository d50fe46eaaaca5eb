"""Bounded downloads from the control plane: blobs and trust documents.

``GET /api/v1/blobs/sha256/{hex}``: every download is bounded by the size the signed
deployment command declares (a server that sends more is cut off), checked against the
declared sha256 as it streams, and limited in time by a ``Budget``: one total deadline
for the whole bundle (a server that drips bytes is aborted) and a stall timeout (no byte
for ``stall_s``). A transfer cut short is resumed with ``Range: bytes=N-`` (a few
attempts, within the same budget). These checks only bound the work: the bytes are
trusted only after the bundle signature verifies them.

``GET /api/v1/trust[/{version}]``: small documents (at most ``MAX_DOCUMENT_BYTES``),
verified by the trust store.

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
MAX_DOCUMENT_BYTES = 1 << 20


class Budget:
    """The time allowed for one bundle: a total deadline and a stall timeout."""

    def __init__(self, total_s: float, stall_s: float) -> None:
        self.total_s = total_s
        self.stall_s = stall_s
        self._deadline = time.monotonic() + total_s

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def check(self, what: str) -> None:
        if self.remaining() <= 0:
            raise TransientDownloadError(f"{what}: bundle download exceeded {self.total_s:g}s")

    def timeout(self, connect_s: float) -> httpx.Timeout:
        """Per-request timeouts: never past the deadline, never longer than a stall."""
        left = max(self.remaining(), 0.001)
        return httpx.Timeout(min(self.stall_s, left), connect=min(connect_s, left))


class BlobFetcher:
    """Downloads blobs by digest within a size bound and a ``Budget``."""

    def __init__(
        self,
        control_plane_url: str,
        *,
        deadline_s: float,
        stall_s: float = 60.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._base = control_plane_url.rstrip("/")
        self.deadline_s = deadline_s
        self.stall_s = stall_s
        self._connect_s = connect_timeout_s
        self._client = httpx.Client(
            timeout=httpx.Timeout(30.0, connect=connect_timeout_s),
            follow_redirects=False,
            # the size bound counts bytes on the wire: no compressed bodies that expand
            headers={"Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self._client.close()

    def budget(self) -> Budget:
        """A fresh budget for one bundle."""
        return Budget(self.deadline_s, self.stall_s)

    def url_for(self, sha256: str) -> str:
        return f"{self._base}/api/v1/blobs/sha256/{sha256}"

    def fetch_bytes(
        self, ref: FileRef, budget: Budget, *, max_size: int = MAX_SIGNATURE_BYTES
    ) -> bytes:
        if ref.size > max_size:
            raise DownloadError(f"{ref.path}: declared size {ref.size} exceeds {max_size} bytes")
        tmp = io.BytesIO()
        self._fetch(ref, tmp, budget)
        return tmp.getvalue()

    def fetch_to(self, ref: FileRef, dest: Path, budget: Budget) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as fh:
            self._fetch(ref, fh, budget)

    def fetch_document(self, path: str, *, max_size: int = MAX_DOCUMENT_BYTES) -> bytes:
        """``GET {control plane}{path}`` (a small JSON document), bounded in size and time."""
        budget = Budget(min(self.deadline_s, 60.0), self.stall_s)
        url = f"{self._base}{path}"
        try:
            with self._client.stream("GET", url, timeout=budget.timeout(self._connect_s)) as resp:
                if resp.status_code != 200:
                    error = (
                        TransientDownloadError
                        if resp.status_code in TRANSIENT_STATUSES
                        else DownloadError
                    )
                    raise error(f"{path}: HTTP {resp.status_code} from control plane")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > max_size:
                        raise DownloadError(f"{path}: larger than {max_size} bytes")
                    budget.check(path)
                return bytes(body)
        except httpx.HTTPError as exc:
            raise TransientDownloadError(f"{path}: {type(exc).__name__}: {exc}") from exc

    def _fetch(self, ref: FileRef, out: BinaryIO, budget: Budget) -> None:
        digest = hashlib.sha256()
        received = 0
        for attempt in range(1, ATTEMPTS + 1):
            budget.check(ref.path)
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                with self._client.stream(
                    "GET",
                    self.url_for(ref.sha256),
                    headers=headers,
                    timeout=budget.timeout(self._connect_s),
                ) as resp:
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
                    _check_length(ref, resp, received)
                    for chunk in resp.iter_bytes():
                        received += len(chunk)
                        if received > ref.size:
                            raise DownloadError(
                                f"{ref.path}: more than the declared {ref.size} bytes"
                            )
                        budget.check(ref.path)
                        digest.update(chunk)
                        out.write(chunk)
                break
            except httpx.HTTPError as exc:
                budget.check(ref.path)
                if attempt == ATTEMPTS:
                    raise TransientDownloadError(_describe(ref, exc, budget)) from exc
                logger.info(
                    "%s: %s after %d bytes; resuming", ref.path, type(exc).__name__, received
                )
                time.sleep(max(0.0, min(2.0, 0.25 * attempt, budget.remaining())))
        if received != ref.size:
            raise DownloadError(f"{ref.path}: got {received} bytes, declared {ref.size}")
        if digest.hexdigest() != ref.sha256:
            raise DownloadError(f"{ref.path}: sha256 differs from the declared digest")


def _check_length(ref: FileRef, resp: httpx.Response, received: int) -> None:
    """Refuse before reading when the server announces more than was declared."""
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit() and received + int(length) > ref.size:
        raise DownloadError(
            f"{ref.path}: server announces {received + int(length)} bytes, "
            f"more than the declared {ref.size}"
        )


def _describe(ref: FileRef, exc: httpx.HTTPError, budget: Budget) -> str:
    if isinstance(exc, httpx.ReadTimeout):
        return f"{ref.path}: no data for {min(budget.stall_s, budget.total_s):g}s"
    return f"{ref.path}: {type(exc).__name__}: {exc}"
