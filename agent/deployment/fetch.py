"""Bounded downloads from the control plane: blobs and trust documents.

``GET /api/v1/blobs/sha256/{hex}``, or first the presigned object-store URL a command
gives a file (``FileRef.url``; one try, then the control plane's URL, which may redirect
to the store): every download is bounded by the size the signed
deployment command declares (a server that sends more is cut off), checked against the
declared sha256 as it streams, and limited in time by a ``Budget``: one total deadline
for the whole bundle (a server that drips bytes is aborted) and a stall timeout (no byte
for ``stall_s``). These checks only bound the work: the bytes are trusted only after the
bundle signature verifies them.

Resuming: a file is written to ``<path>.part`` in staging (``agent.deployment.staging``)
and renamed only when its size and sha256 match. A transfer cut short is resumed with
``Range: bytes=<held>-`` (a few attempts, within the same budget), and so is a ``.part``
an earlier attempt or agent run left (its bytes are hashed first). The answer must fit:
``206`` whose ``Content-Range`` starts at the offset asked for; ``200`` (Range ignored)
truncates and takes the whole body; ``416`` or a ``206`` starting elsewhere truncates and
asks again from byte 0. If the final digest of a resumed file is wrong (a corrupt
prefix) it is fetched once more from zero; a wrong digest from zero is refused.

``GET /api/v1/trust[/{version}]``: small documents (at most ``MAX_DOCUMENT_BYTES``),
verified by the trust store.

Failures that say nothing about the bytes (connection refused or reset, timeouts, the
deadline, HTTP 5xx/408/429) raise ``TransientDownloadError`` and the deployment is
retried later; refused content (too large, wrong digest, other HTTP statuses) raises
``DownloadError`` and is not.

Requests go through ``agent.http_client`` (``http.client``), not httpx: a process
cannot unload a module, and httpx stayed in the agent after its first download (~7.8 MB
resident). One connection per request; redirects followed for blobs only.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import urlsplit

from agent import http_client
from agent.deployment.staging import Staging
from agent.errors import DownloadError, TransientDownloadError
from protocol import FileRef

logger = logging.getLogger(__name__)

ATTEMPTS = 3
#: HTTP statuses that mean "try again later", not "these bytes are wrong"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_SIGNATURE_BYTES = 1 << 20
MAX_DOCUMENT_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-\d+/(?:\d+|\*)$")


class Sink(Protocol):
    """Where a blob's bytes go: ``size`` held so far, hashed as they arrive."""

    size: int

    def write(self, chunk: bytes) -> None: ...

    def reset(self) -> None: ...

    def hexdigest(self) -> str: ...


class MemorySink:
    """A small blob (signature, metadata) held in memory."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.data += chunk
        self._digest.update(chunk)
        self.size += len(chunk)

    def reset(self) -> None:
        self.data.clear()
        self._digest = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


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

    def timeouts(self, connect_s: float) -> tuple[float, float]:
        """Per-request (connect, read) timeouts: never past the deadline, never longer
        than a stall."""
        left = max(self.remaining(), 0.001)
        return min(connect_s, left), min(self.stall_s, left)


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
        self._cancel = http_client.Cancel()

    def close(self) -> None:
        """Cut every transfer short, one waiting for its answer too (the agent is
        stopping: a download resumes at the next start), and refuse new ones
        (``TransientDownloadError``)."""
        self._cancel.cancel()

    @contextmanager
    def _request(
        self,
        url: str,
        what: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = False,
    ) -> Iterator[http_client.Response]:
        """``http_client.request`` (GET) that ``close`` can cut short."""
        if self._cancel.cancelled:
            raise _stopping(what)
        try:
            resp = http_client.request(
                "GET",
                url,
                headers=headers,
                connect_timeout_s=connect_timeout_s,
                read_timeout_s=read_timeout_s,
                follow_redirects=follow_redirects,
                cancel=self._cancel,
            )
        except http_client.TransportError as exc:
            if self._cancel.cancelled:
                raise _stopping(what) from exc
            raise
        with resp:
            yield resp

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
        sink = MemorySink()
        self._fetch(ref, sink, budget)
        _check_digest(ref, sink)
        return bytes(sink.data)

    def fetch_checked(self, ref: FileRef, sink: Sink, budget: Budget) -> None:
        """Download ``ref`` into ``sink`` and check its digest (DownloadError if wrong)."""
        self._fetch(ref, sink, budget)
        _check_digest(ref, sink)

    def fetch_to(self, ref: FileRef, staging: Staging, budget: Budget) -> None:
        """Download ``ref`` into ``staging``, reusing what an earlier attempt left there."""
        if staging.has_complete(ref):
            logger.info("%s: already staged (%d bytes)", ref.path, ref.size)
            return
        with staging.open_part(ref) as part:
            kept = part.size
            if kept:
                logger.info("%s: resuming at byte %d of %d", ref.path, kept, ref.size)
            self._fetch(ref, part, budget)
            if kept and part.hexdigest() != ref.sha256:
                logger.warning(
                    "%s: the %d bytes kept from an earlier attempt were wrong; "
                    "downloading it again",
                    ref.path,
                    kept,
                )
                part.reset()
                self._fetch(ref, part, budget)
            _check_digest(ref, part)
        staging.finish(ref)

    def fetch_document(self, path: str, *, max_size: int = MAX_DOCUMENT_BYTES) -> bytes:
        """``GET {control plane}{path}`` (a small JSON document), bounded in size and time."""
        budget = Budget(min(self.deadline_s, 60.0), self.stall_s)
        url = f"{self._base}{path}"
        connect_s, read_s = budget.timeouts(self._connect_s)
        try:
            with self._request(
                url, path, connect_timeout_s=connect_s, read_timeout_s=read_s
            ) as resp:
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
        except http_client.TransportError as exc:
            raise TransientDownloadError(f"{path}: {exc}") from exc

    def _fetch(self, ref: FileRef, sink: Sink, budget: Budget) -> None:
        """Fill ``sink`` up to ``ref.size`` bytes, resuming from ``sink.size``: from the
        presigned URL the command gives, if any (one try), else or then from the control
        plane's blob URL (which may redirect to the object store)."""
        if ref.url is not None:
            where = _origin(ref.url)
            try:
                self._transfer(ref, sink, budget, ref.url, source=where, attempts=1)
                return
            except DownloadError as exc:  # Transient too: the control plane is the fallback
                budget.check(ref.path)
                logger.info(
                    "%s: %s; downloading through the control plane from byte %d",
                    ref.path,
                    exc,
                    sink.size,
                )
        self._transfer(ref, sink, budget, self.url_for(ref.sha256), source="control plane")

    def _transfer(
        self,
        ref: FileRef,
        sink: Sink,
        budget: Budget,
        url: str,
        *,
        source: str,
        attempts: int = ATTEMPTS,
    ) -> None:
        """Fill ``sink`` from ``url`` (redirects followed).

        Every restart from zero either follows a resumed request (at most one per
        failed attempt, and an attempt from zero sends no Range) or ends the loop, so
        the loop is bounded by ``attempts`` failed transfers. Messages name ``source``,
        never ``url`` (a presigned URL is a credential).
        """
        failures = 0
        while sink.size < ref.size:
            budget.check(ref.path)
            offset = sink.size
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            connect_s, read_s = budget.timeouts(self._connect_s)
            try:
                with self._request(
                    url,
                    ref.path,
                    headers=headers,
                    follow_redirects=True,
                    connect_timeout_s=connect_s,
                    read_timeout_s=read_s,
                ) as resp:
                    if not _fits(ref, resp, offset, source):
                        sink.reset()
                        if resp.status_code != 200:  # 416 / a misplaced 206: ask again
                            continue
                    _check_length(ref, resp, sink.size)
                    for chunk in resp.iter_bytes():
                        if sink.size + len(chunk) > ref.size:
                            raise DownloadError(
                                f"{ref.path}: more than the declared {ref.size} bytes"
                            )
                        budget.check(ref.path)
                        sink.write(chunk)
            except http_client.TransportError as exc:
                failures += 1
                budget.check(ref.path)
                if failures >= attempts:
                    raise TransientDownloadError(_describe(ref, exc, budget, source)) from exc
                logger.info("%s: %s after %d bytes; resuming", ref.path, _kind(exc), sink.size)
                time.sleep(max(0.0, min(2.0, 0.25 * failures, budget.remaining())))
                continue
            if sink.size < ref.size:  # the body ended cleanly but short
                if self._cancel.cancelled:  # a body without a length, cut by a stop
                    raise _stopping(ref.path)
                raise DownloadError(f"{ref.path}: got {sink.size} bytes, declared {ref.size}")


def _stopping(what: str) -> TransientDownloadError:
    return TransientDownloadError(f"{what}: not downloaded: the agent is stopping")


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a log line may say about a presigned URL."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _fits(ref: FileRef, resp: http_client.Response, offset: int, source: str) -> bool:
    """Whether the response continues at ``offset``; False if it must be dropped (HTTP
    200 to a resume: the whole body follows; 416 or a 206 elsewhere: ask from zero)."""
    status = resp.status_code
    if status == 200:
        if offset:
            logger.info("%s: the server ignored Range; downloading from the start", ref.path)
        return not offset
    if status == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if match is not None and int(match.group(1)) == offset:
            return True
        if not offset:  # we asked for no range at all
            raise DownloadError(f"{ref.path}: HTTP 206 to a request without Range")
        logger.info("%s: Content-Range does not start at %d; downloading again", ref.path, offset)
        return False
    if status == 416 and offset:
        logger.info("%s: HTTP 416 to Range: bytes=%d-; downloading again", ref.path, offset)
        return False
    error = TransientDownloadError if status in TRANSIENT_STATUSES else DownloadError
    raise error(f"{ref.path}: HTTP {status} from {source}")


def _check_digest(ref: FileRef, sink: Sink) -> None:
    if sink.size != ref.size:
        raise DownloadError(f"{ref.path}: got {sink.size} bytes, declared {ref.size}")
    if sink.hexdigest() != ref.sha256:
        raise DownloadError(f"{ref.path}: sha256 differs from the declared digest")


def _check_length(ref: FileRef, resp: http_client.Response, received: int) -> None:
    """Refuse before reading when the server announces more than was declared."""
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit() and received + int(length) > ref.size:
        raise DownloadError(
            f"{ref.path}: server announces {received + int(length)} bytes, "
            f"more than the declared {ref.size}"
        )


def _kind(exc: http_client.TransportError) -> str:
    """What went wrong in one word (the message starts with it, or the cause's name)."""
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__


def _describe(ref: FileRef, exc: http_client.TransportError, budget: Budget, source: str) -> str:
    if isinstance(exc, http_client.ReadTimeout):
        where = "" if source == "control plane" else f" from {source}"
        return f"{ref.path}: no data{where} for {min(budget.stall_s, budget.total_s):g}s"
    if source != "control plane":  # an error may quote the URL, which is a credential
        return f"{ref.path}: {_kind(exc)} from {source}"
    return f"{ref.path}: {exc}"
