"""The least a network server can add to ``session.run`` on this box: raw TCP, bare HTTP.

``bench.serving`` times these paths beside the real local API so that its REST figure
can be read against the floors of the machine it ran on. ``TcpFloor`` is a one-connection
server thread that reads a request of a size known in advance (no parsing, no headers)
into a fresh buffer, runs the same ONNX Runtime session on a numpy view of it and
writes the output's raw bytes back; the client sends the tensor's memory and reads the
known number of bytes back. Everything the real path adds beyond this is HTTP framing,
the Open Inference Protocol and the agent's own bookkeeping.

``HttpFloor`` is the least an HTTP/1.1 server can do for the same request from the
same ``http.client`` client as ``rest_binary``: find the end of the head and the
``Content-Length`` with two byte searches, read the body into a fresh buffer, run, and
write one pre-built head plus the same answer the agent gives (a pre-built OIP JSON
header, ``answer_header``, then the output bytes), which the client decodes as it
decodes the agent's. No validation, no routing, no JSON parsing or encoding: a server no
one should ship, which is the point. Its figure minus the TCP floor is what HTTP itself
(chiefly the client's request building and response parsing) costs here.

(Until 2026-12-07 it answered the output bytes alone, so the client decoded the agent's
answer and not the floor's: the OIP header's JSON, a header lookup, a reshape to the
announced shape: ~4 us of client Python, measured alone, counted against the agent.)
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import numpy as np


def _recv_exactly(sock: socket.socket, into: memoryview) -> bool:
    got = 0
    while got < len(into):
        n = sock.recv_into(into[got:])
        if not n:
            return False
        got += n
    return True


class _FixedServer:
    """One accepted connection served on a daemon thread by ``serve(sock)``."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._serve = serve
        self._thread = threading.Thread(target=self._run, name="bench-floor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock, _ = self._listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            self._serve(sock)

    def close(self) -> None:
        self._thread.join(5)
        self._listener.close()


class HttpFloor:
    """``run(input) -> output`` behind the barest HTTP/1.1 keep-alive server."""

    def __init__(
        self, run: Callable[[np.ndarray], np.ndarray], like: np.ndarray, *, answer_header: bytes
    ) -> None:
        """``answer_header``: the answer's OIP JSON header (``rest_paths.cnn_answer_header``)."""
        self._run = run
        self._like = like
        self._answer_header = answer_header
        self._server = _FixedServer(self._serve)
        self.address = self._server.address

    def _serve(self, sock: socket.socket) -> None:
        pending = b""
        while True:
            while (end := pending.find(b"\r\n\r\n")) < 0:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                pending += chunk
            at = pending.lower().find(b"content-length:", 0, end)
            length = int(pending[at + 15 : pending.find(b"\r\n", at)])
            body = np.empty(length, dtype=np.uint8)
            start = end + 4
            have = min(length, len(pending) - start)
            body[:have] = np.frombuffer(pending, np.uint8, have, start)
            pending = pending[start + have :]
            if not _recv_exactly(sock, body.data[have:]):
                return
            header = int(self._like.nbytes and length - self._like.nbytes)
            array = body[header:].view(self._like.dtype).reshape(self._like.shape)
            out = np.ascontiguousarray(self._run(array))
            answer = self._answer_header
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\nInference-Header-Content-Length: %d\r\n\r\n"
                % (len(answer) + out.nbytes, len(answer))
            )
            sock.sendmsg([head, answer, out.data])

    def close(self) -> None:
        self._server.close()


class TcpFloor:
    """``run(input) -> output`` served over loopback TCP with fixed-size framing."""

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        like: np.ndarray,
        out_bytes: int,
    ) -> None:
        self._run = run
        self._like = like
        self._out_bytes = out_bytes
        self._server = _FixedServer(self._serve)
        self._client = socket.create_connection(self._server.address)
        self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._answer = memoryview(bytearray(out_bytes))

    def _serve(self, sock: socket.socket) -> None:
        while True:
            body = np.empty(self._like.nbytes, dtype=np.uint8)  # fresh, as a server's
            if not _recv_exactly(sock, body.data):
                return
            array = body.view(self._like.dtype).reshape(self._like.shape)
            sock.sendall(np.ascontiguousarray(self._run(array)).data)

    def call(self, array: np.ndarray) -> np.ndarray:
        self._client.sendall(array.reshape(-1).view(np.uint8).data)
        if not _recv_exactly(self._client, self._answer):
            raise ConnectionError("the floor server closed the connection")
        return np.frombuffer(self._answer, dtype=np.float32).copy()

    def close(self) -> None:
        self._client.close()
        self._server.close()
