"""A webhook receiver for the alert tests: a real HTTP server on a free loopback port.

It checks each request's ``X-EdgeFleet-Signature`` the way ``docs/alerts.md`` tells a
receiver to (HMAC-SHA256 of ``"<t>.<body>"`` with the shared secret, compared in constant
time, ``t`` within five minutes), independently of the control plane's own code, and
records what arrived. ``statuses`` scripts its answers (then 200 for good).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    @property
    def event(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


def signature_ok(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """The receiver's check, as documented."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if not re.fullmatch(r"[0-9]{1,12}", parts.get("t", "")) or "v1" not in parts:
        return False
    if abs(time.time() - int(parts["t"])) > tolerance_s:
        return False
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), parts["v1"].encode("utf-8", "replace"))


@dataclass
class Receiver:
    secret: str
    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def record(self, received: Received) -> None:
        with self.lock:
            self.received.append(received)

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = [r.event for r in self.received]
        return [e for e in found if type_ is None or e["type"] == type_]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            header = self.headers.get("x-edgefleet-signature", "")
            receiver.record(
                Received(
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    verified=signature_ok(receiver.secret, header, body),
                    at=time.time(),
                )
            )
            status = receiver.answer()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", receiver.url + "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@contextmanager
def webhook_receiver(secret: str, *, statuses: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret=secret, statuses=list(statuses or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/edgefleet"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
