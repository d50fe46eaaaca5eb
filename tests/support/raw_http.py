"""A raw HTTP/1.1 client on one loopback socket, for tests of the agent's HTTP server:
bytes in exactly as written, parsed answers out (``Content-Length`` bodies only)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

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
