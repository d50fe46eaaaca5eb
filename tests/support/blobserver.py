"""A tiny real HTTP blob server for agent tests: ``GET /api/v1/blobs/sha256/{hex}``.

Serves bytes by sha256 from memory in a thread (``http.server``), honours
``Range: bytes=a-b`` / ``bytes=a-`` (206, 416 if unsatisfiable), and can cut a transfer
short once (``cut_once``) to exercise resumption, and answers 503 to every request while
``unavailable`` is set (a control plane that is down). ``assignment_for`` publishes a signed
bundle directory on it and returns the matching ``ModelAssignment``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from model_store import SIGNATURE_FILENAME, bundle_files, load_metadata, verify_signature
from protocol import FileRef, ModelAssignment

_PATH = re.compile(r"^/api/v1/blobs/sha256/([0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class BlobServer:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.unavailable = False
        self.refused = 0  # requests answered 503 while unavailable
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def start(self) -> BlobServer:
        self._thread.start()
        return self

    def stop(self) -> None:
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
                data = server.blobs.get(match.group(1)) if match else None
                if match is None or data is None:
                    self._send(404, b'{"detail": "not found"}')
                    return
                start, end, status = 0, len(data) - 1, 200
                if range_header:
                    m = _RANGE.match(range_header)
                    if m is None or int(m.group(1)) >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    start = int(m.group(1))
                    end = min(int(m.group(2)), end) if m.group(2) else end
                    status = 206
                body = data[start : end + 1]
                cut = server.cut_once.pop(match.group(1), None)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def assignment_for(
    server: BlobServer, bundle_dir: Path, *, trusted_keys: list[Any], deployment_id: int = 1
) -> ModelAssignment:
    """Serve every file of a signed bundle and describe it as a ModelAssignment."""
    signature = (bundle_dir / SIGNATURE_FILENAME).read_bytes()
    manifest = verify_signature(signature, trusted_keys)
    files = []
    for f in bundle_files(bundle_dir):
        digest = server.add((bundle_dir / f.path).read_bytes())
        files.append(FileRef(path=f.path, sha256=digest, size=f.size))
    meta = load_metadata(bundle_dir)
    sig_digest = server.add(signature)
    return ModelAssignment(
        deployment_id=deployment_id,
        name=meta.name,
        version=meta.version,
        bundle_digest=manifest.bundle_digest,
        signature=FileRef(path=SIGNATURE_FILENAME, sha256=sig_digest, size=len(signature)),
        files=files,
    )
