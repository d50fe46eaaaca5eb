"""A raw HTTP/1.1 client on one loopback socket, for tests of the agent's HTTP server:
bytes in exactly as written, parsed answers out (``Content-Length`` bodies only).

``oip_request``, ``read_until_closed`` and ``refused`` hold a request in flight while an
agent stops (under the fake notify socket and under a real systemd): send all but the
last bytes, stop the agent, see the port refuse new connections, send the rest, read the
answer the draining server still gives."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import numpy as np

from agent.serving.http_server import HttpServer


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """A raw socket: bytes in, parsed HTTP/1.1 answers out (Content-Length bodies)."""

    def __init__(self, server: HttpServer) -> None:
        assert server.url is not None
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def answer(self, *, head_only: bool = False) -> Answer:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed; got {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = 0 if head_only else int(headers["content-length"])
        while len(self.buf) < length:
            assert self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Answer(status, headers, body)

    def closed(self) -> bool:
        """True once the server has closed the connection (after any pending answer)."""
        try:
            return not self.buf and not self._fill()
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


#: OIP datatype of each numpy dtype the test models take.
OIP_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def oip_body(inputs: dict[str, np.ndarray], **more: object) -> dict[str, object]:
    """An OIP (KServe v2) JSON inference request body for ``inputs`` (plus ``more`` keys)."""
    return {
        **more,
        "inputs": [
            {
                "name": name,
                "shape": list(value.shape),
                "datatype": OIP_DATATYPES[value.dtype],
                "data": value.ravel().tolist(),
            }
            for name, value in inputs.items()
        ],
    }


def oip_request(host: str, port: int, model: str, inputs: dict[str, np.ndarray]) -> bytes:
    """The whole bytes of an OIP (KServe v2) JSON inference request for ``inputs``."""
    body = json.dumps(oip_body(inputs)).encode()
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_until_closed(sock: socket.socket, timeout: float = 30) -> tuple[int, dict[str, object]]:
    """Read until the server closes (it does when it is shutting down); status and JSON."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def refused(host: str, port: int) -> bool:
    """True when a connection to ``host:port`` is refused (nothing listens any more)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
