"""A tiny real HTTP control plane for agent tests: blobs and the trust chain.

``GET /api/v1/blobs/sha256/{hex}`` serves bytes by sha256 from memory in a thread
(``http.server``), honours ``Range: bytes=a-b`` / ``bytes=a-`` (206, 416 if
unsatisfiable), and can misbehave on purpose: cut a transfer short once (``cut_once``,
to exercise resumption), drip a blob one byte at a time (``drip``: seconds per byte),
stream without a Content-Length (``chunked``, so only the agent's own count stops a
blob that is longer than declared), and answer 503 to every request while
``unavailable`` is set (a control plane that is down). Resumption tests: ``hold_once``
sends the first N bytes of a blob, sets ``holding`` and then waits (with the connection
open) until ``release`` is set; ``range_mode`` answers Range requests wrongly on
purpose: ``"ignore"`` (200 and the whole blob), ``"misplaced"`` (206 whose
Content-Range starts at 0, not where asked) or ``"refuse"`` (416). ``requests`` logs
(path, Range header) and ``served`` counts body bytes sent per blob digest.

``GET /api/v1/trust/{version}`` and ``GET /api/v1/trust`` (the latest) serve the trust
documents in ``trust`` (``serve_trust``).

Helpers: ``assignment_for`` publishes a signed bundle directory and returns the matching
``ModelAssignment``; ``desired_state`` builds a ``DesiredState``; ``sign_command`` wraps
it in a ``SignedEnvelope`` signed by a control-plane key (``load_private_key`` of
``TrustKit.cp_key``) the way the control plane does; ``trust_document`` builds a trust
document from key files (an update, a rotation, a revocation, or a forgery).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec

from model_store import (
    SIGNATURE_FILENAME,
    TrustDocument,
    build_trust_document,
    bundle_files,
    load_metadata,
    load_private_key,
    load_public_key,
    parse_unverified_trust,
    sign_envelope,
)
from model_store.digests import bundle_digest
from protocol import (
    DESIRED_STATE_PAYLOAD_TYPE,
    DesiredState,
    FileRef,
    ModelAssignment,
    SignedEnvelope,
    encode,
)

_PATH = re.compile(r"^/api/v1/blobs/sha256/([0-9a-f]{64})$")
_TRUST = re.compile(r"^/api/v1/trust(?:/(\d+))?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class BlobServer:
    def __init__(self, port: int = 0) -> None:
        """``port``: where to listen (0: a free one); a fixed port lets a control plane
        that went away come back at the same address."""
        self.blobs: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}
        self.drip: dict[str, float] = {}
        self.chunked = False
        self.hold_once: dict[str, int] = {}
        self.holding = threading.Event()
        self.release = threading.Event()
        self.range_mode: Literal["honour", "ignore", "misplaced", "refuse"] = "honour"
        self.served: dict[str, int] = {}
        self.trust: dict[int, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.unavailable = False
        self.refused = 0  # requests answered 503 while unavailable
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def serve_trust(self, *documents: TrustDocument | bytes) -> None:
        """Serve trust documents (or raw envelope bytes) under their versions."""
        for doc in documents:
            parsed = doc if isinstance(doc, TrustDocument) else parse_unverified_trust(doc)
            self.trust[parsed.version] = parsed.raw()

    def start(self) -> BlobServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()  # held transfers end
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> BlobServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                match = _PATH.match(self.path)
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                if server.unavailable:
                    server.refused += 1
                    self._send(503, b'{"detail": "unavailable"}')
                    return
                trust = _TRUST.match(self.path)
                if trust is not None:
                    self._trust(int(trust.group(1)) if trust.group(1) else None)
                    return
                data = server.blobs.get(match.group(1)) if match else None
                if match is None or data is None:
                    self._send(404, b'{"detail": "not found"}')
                    return
                start, end, status = 0, len(data) - 1, 200
                mode = server.range_mode
                if range_header and mode == "misplaced":
                    status = 206  # the whole blob, labelled as such, whatever was asked
                elif range_header and mode != "ignore":
                    m = _RANGE.match(range_header)
                    if mode == "refuse" or m is None or int(m.group(1)) >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    start = int(m.group(1))
                    end = min(int(m.group(2)), end) if m.group(2) else end
                    status = 206
                body = data[start : end + 1]
                digest = match.group(1)
                cut = server.cut_once.pop(digest, None)
                hold = server.hold_once.pop(digest, None)
                drip = server.drip.get(digest)
                self.send_response(status)
                if server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if cut is not None:
                    self._write(digest, body[:cut])
                    self.close_connection = True
                    return
                try:
                    if hold is not None:
                        self._write(digest, body[:hold])
                        server.holding.set()
                        server.release.wait(60)
                        body = body[hold:]
                    self._body(digest, body, drip)
                except OSError:  # the agent hung up (that is what a bound is for)
                    self.close_connection = True

            def _body(self, digest: str, body: bytes, drip: float | None) -> None:
                pieces = [body[i : i + 1] for i in range(len(body))] if drip else [body]
                for piece in pieces:
                    self._write(digest, piece)
                    if drip:
                        time.sleep(drip)
                if server.chunked:
                    self.wfile.write(b"0\r\n\r\n")

            def _write(self, digest: str, piece: bytes) -> None:
                # counted before the write: the client may have read it all and moved on
                # before this thread runs again
                server.served[digest] = server.served.get(digest, 0) + len(piece)
                if server.chunked:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    self.wfile.write(piece)
                self.wfile.flush()

            def _trust(self, version: int | None) -> None:
                if version is None and server.trust:
                    version = max(server.trust)
                raw = server.trust.get(version) if version is not None else None
                if raw is None:
                    self._send(404, b'{"detail": "unknown trust version"}')
                else:
                    self._send(200, raw)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def assignment_for(
    server: BlobServer, bundle_dir: Path, *, deployment_id: int = 1
) -> ModelAssignment:
    """Serve every file of a signed bundle and describe it as a ModelAssignment.

    The bundle digest is computed from the files (not from the signature, which may be
    a forged one in an attack test); ``size`` is the signature plus every file.
    """
    signature = (bundle_dir / SIGNATURE_FILENAME).read_bytes()
    listed = bundle_files(bundle_dir)
    files = []
    for f in listed:
        digest = server.add((bundle_dir / f.path).read_bytes())
        files.append(FileRef(path=f.path, sha256=digest, size=f.size))
    meta = load_metadata(bundle_dir)
    sig_digest = server.add(signature)
    return ModelAssignment(
        deployment_id=deployment_id,
        name=meta.name,
        version=meta.version,
        bundle_digest=bundle_digest(f.sha256 for f in listed),
        size=len(signature) + sum(f.size for f in listed),
        signature=FileRef(path=SIGNATURE_FILENAME, sha256=sig_digest, size=len(signature)),
        files=files,
    )


def desired_state(
    device_id: str,
    generation: int,
    *models: ModelAssignment,
    trust_version: int = 1,
    expires_in: timedelta = timedelta(hours=1),
) -> DesiredState:
    """A deployment command's payload; a negative ``expires_in`` makes an expired one."""
    now = datetime.now(UTC)
    return DesiredState(
        device_id=device_id,
        generation=generation,
        issued_at=now,
        expires_at=now + expires_in,
        trust_version=trust_version,
        models=list(models),
    )


def sign_command(
    desired: DesiredState | bytes, signers: Sequence[ec.EllipticCurvePrivateKey]
) -> SignedEnvelope:
    """A signed deployment command, as the control plane publishes it on ``.../desired``.

    ``desired`` may be raw payload bytes (to sign something that is not a DesiredState).
    """
    payload = encode(desired) if isinstance(desired, DesiredState) else desired
    return sign_envelope(payload, DESIRED_STATE_PAYLOAD_TYPE, signers)


def trust_document(
    version: int,
    *,
    roots: Sequence[Path],
    releases: Sequence[Path],
    control_planes: Sequence[Path],
    signers: Sequence[Path],
    revoked: Sequence[str] = (),
    expires_in: timedelta = timedelta(days=365),
) -> TrustDocument:
    """A trust document: public key files per role, signed by the private key files
    ``signers`` (an update needs a root of the current version and of this one)."""
    return build_trust_document(
        version=version,
        expires=datetime.now(UTC) + expires_in,
        roots=[load_public_key(p) for p in roots],
        releases=[load_public_key(p) for p in releases],
        control_planes=[load_public_key(p) for p in control_planes],
        revoked=revoked,
        signers=[load_private_key(p) for p in signers],
    )
