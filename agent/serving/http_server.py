"""A small HTTP/1.1 server on threads: the transport of the agent's local inference API.

Why not uvicorn: on the 2-core box of ``docs/benchmarks.md`` a 600 KB POST with a tiny
answer costs 1.3-1.7 ms p50 through FastAPI + uvicorn, 0.7-1.15 ms through a raw ASGI
app on uvicorn (h11 or httptools), 1.0-1.3 ms through an asyncio protocol handing the
work to a thread pool, and 0.2-0.4 ms with one blocking thread per connection. The
local API serves few, long-lived loopback clients, so it takes the last: the
connection's own thread reads the request with ``recv_into`` straight into the body
buffer, calls the handler (inference runs there, never on an event loop; onnxruntime
releases the GIL) and writes the answer with one gather write (``agent.serving.http_wire``).

Every read and write within a request is ``MSG_DONTWAIT`` on a socket without a Python
timeout: it takes what has arrived (writes what fits) and only when that is nothing does
the thread wait, in ``poll``, for the time its deadline leaves. Waiting for the next
request on a kept-alive connection is one blocking ``recv`` bounded by the kernel
(``SO_RCVTIMEO``, the idle keep-alive timeout, set once per connection; ``poll`` where the
value does not read back). A Python socket timeout would cost an
``ioctl`` to set before each read and a ``poll`` before every read and write, each a
system call and a release of the GIL that the client thread of ``bench.peers`` (the same
process) takes in turn; a 600 KB body already in the socket's buffer is now read with
one system call per read, and the answer written with one.

Bounds (``Limits``): head size (431), body size decided from ``Content-Length`` before
any of the body is read (413), an idle keep-alive timeout, a deadline on each whole
request from its first byte, however the bytes trickle in (408), and one on writing
each whole answer; none runs while the handler works. ``max_connections``: when all
are open, a new connection takes the slot of the one that has waited longest on its
client (``agent.serving.http_slots``); 503 only when all are busy. Keep-alive and
pipelining: bytes after one request stay buffered for the next; answers go out in
order. A handler that raises is a 500 ``internal error`` logged in one line; no
traceback ever reaches a client.

``scope``: what each request runs within, from its parsed head to its written answer
(the local API confines the thread to the cores of the model the request names, so a
heavy model's large bodies are read on its cores, ``agent.serving.placement``).

Drain (``stop``): the listening socket closes at once (new connections are refused),
idle keep-alive connections are closed without an answer, and a request already begun
(from its first byte) is finished and answered with ``Connection: close``, up to the
timeout.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from agent.errors import AgentError
from agent.serving.http_slots import Connection, Phase, Slots
from agent.serving.http_wire import (
    FIRST_READ,
    READ_CHUNK,
    BodyAllocator,
    Handler,
    Limits,
    PeerClosed,
    Refused,
    Request,
    Response,
    body_length,
    close,
    default_body,
    error_response,
    idle_timeout,
    parse_head,
    refuse,
    send_response,
    send_within,
    shutdown,
)

logger = logging.getLogger(__name__)

#: what a request runs within, from its parsed head to its written answer (its body read
#: included): ``LocalApi.scope`` confines the thread to the cores of the model it names;
#: None: nothing (no context manager to enter and leave on every request)
Scope = Callable[[Request], AbstractContextManager[None] | None]


def _no_scope(request: Request) -> None:
    return None


class HttpServer:
    """Serves ``handler`` on ``host:port`` (port 0: a free one) from daemon threads."""

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        limits: Limits | None = None,
        body_allocator: BodyAllocator | None = None,
        scope: Scope | None = None,
        server_header: str = "edgefleet-agent",
    ) -> None:
        self._handler = handler
        self._scope = scope or _no_scope
        self._host, self._port = host, port
        self.limits = limits or Limits()
        self._allocate = body_allocator or default_body
        self._server = server_header.encode("latin-1")
        self._slots = Slots(self.limits.max_connections)
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._draining = False
        self.url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> str:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise AgentError(
                f"local API cannot bind {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self.url = f"http://{host}:{port}"
        self._listener = sock
        self._draining = False
        self._acceptor = threading.Thread(
            target=self._accept, args=(sock,), name=f"http-{port}", daemon=True
        )
        self._acceptor.start()
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new connections now; let requests in flight finish (up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        self._draining = True
        listener, self._listener = self._listener, None
        if listener is not None:
            shutdown(listener)  # wakes accept()
            listener.close()
        connections = self._slots.snapshot()
        for conn in connections:
            with conn.lock:
                if conn.phase is Phase.IDLE:
                    shutdown(conn.sock)
        for thread in connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [conn for conn, thread in connections.items() if thread.is_alive()]
        for conn in late:
            shutdown(conn.sock)
        if late:
            logger.warning("local API stopped with %d request(s) unfinished", len(late))
        if self._acceptor is not None:
            self._acceptor.join(max(0.1, deadline - time.monotonic()))
            self._acceptor = None

    @property
    def active_connections(self) -> int:
        return len(self._slots)

    def phases(self) -> list[Phase]:
        """The phase of each connection holding a slot (diagnostics and tests)."""
        return [c.phase for c in self._slots.snapshot() if not c.evicted]

    # -- accepting ---------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError as exc:
                if self._draining:
                    return  # closed by stop()
                logger.warning("local API cannot accept a connection: %s", exc)
                time.sleep(0.1)  # e.g. out of file descriptors: retry, do not spin
                continue
            if self._draining:
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)  # no Python timeout: see the module docstring
            conn = Connection(sock)
            conn.idle_bounded = idle_timeout(sock, self.limits.keep_alive_s)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="http-conn", daemon=True
            )
            if not self._slots.admit(conn, thread):  # every connection is busy
                refuse(sock, error_response(503, "too many connections"), server=self._server)

    # -- one connection ----------------------------------------------------------------

    def _serve(self, conn: Connection) -> None:
        buf = bytearray(self.limits.max_header_bytes + READ_CHUNK)
        view = memoryview(buf)
        have, keep_alive, linger = 0, True, False
        try:
            while keep_alive and not self._draining:
                have, keep_alive, linger = self._one_request(conn, buf, view, have)
        except PeerClosed:
            pass
        except OSError as exc:  # reset, timeout, or shut down by stop()
            logger.debug("local API connection closed: %s", exc)
        except Exception as exc:  # a bug here must not leave a thread traceback behind
            logger.error("local API connection failed: %s: %s", type(exc).__name__, exc)
            logger.debug("local API connection failure", exc_info=True)
        finally:
            self._slots.remove(conn)
            close(conn.sock, linger=linger)

    def _one_request(
        self, conn: Connection, buf: bytearray, view: memoryview, have: int
    ) -> tuple[int, bool, bool]:
        """Read, run and answer one request: (bytes left buffered, keep-alive, linger)."""
        sock, limits = conn.sock, self.limits
        with conn.lock:
            if self._draining:
                raise PeerClosed
            if have == 0:
                conn.phase = Phase.IDLE
        if have == 0:  # evicted or drained while idle: closed unanswered
            have = _recv_idle(conn, view, limits.keep_alive_s)
        with conn.lock:
            if self._draining and conn.phase is Phase.IDLE:  # arrived after stop() began
                raise PeerClosed
            conn.phase = Phase.READING
        deadline = time.monotonic() + limits.request_timeout_s
        try:
            end, have = self._read_head(conn, buf, view, have, deadline)
            request, keep_alive, expect = parse_head(bytes(view[:end]))
        except Refused as exc:
            return self._refuse(sock, exc)
        scope = self._scope(request)  # e.g. the cores of the model it names, until answered
        if scope is None:
            return self._finish(conn, request, keep_alive, expect, view, have, end, deadline)
        with scope:
            return self._finish(conn, request, keep_alive, expect, view, have, end, deadline)

    def _finish(
        self,
        conn: Connection,
        request: Request,
        keep_alive: bool,
        expect: bool,
        view: memoryview,
        have: int,
        end: int,
        deadline: float,
    ) -> tuple[int, bool, bool]:
        """Read the body of a request whose head ends at ``end``, run it and answer."""
        sock, limits = conn.sock, self.limits
        try:
            length = body_length(request, limits)
            body = self._allocate(request.headers, length)
            start = end + 4
            got = min(length, have - start)
            body[:got] = view[start : start + got]
            rest = have - start - got
            if rest:  # the start of a pipelined request: to the front
                view[:rest] = view[start + got : have]
            have = rest
            if got < length and expect:
                send_within(sock, (b"HTTP/1.1 100 Continue\r\n\r\n",), limits.write_timeout_s)
            while got < length:
                got += self._recv_request(conn, body, got, deadline)
        except Refused as exc:  # the body (if any) is unread: answer, then close
            return self._refuse(sock, exc)
        with conn.lock:  # from here on no deadline runs until the answer is written
            conn.phase = Phase.BUSY
        request.body = body
        try:
            response = self._handler(request)
        except Exception as exc:
            response = _failed(request, exc)
        with conn.lock:  # once its answer is out it waits on its client again
            conn.since = time.monotonic()
        close_after = not keep_alive or self._draining or conn.evicted
        send_response(
            sock,
            response,
            close=close_after,
            server=self._server,
            timeout=limits.write_timeout_s,
            head_only=request.method == "HEAD",
        )
        return have, not close_after, False

    def _refuse(self, sock: socket.socket, exc: Refused) -> tuple[int, bool, bool]:
        """Answer a refused request and close (its body, if any, is unread)."""
        response = error_response(exc.status, str(exc))
        send_response(
            sock, response, close=True, server=self._server, timeout=self.limits.write_timeout_s
        )
        return 0, False, True

    def _read_head(
        self, conn: Connection, buf: bytearray, view: memoryview, have: int, deadline: float
    ) -> tuple[int, int]:
        """(index of the CRLFCRLF ending the head, bytes buffered), reading as needed."""
        limit = self.limits.max_header_bytes
        scanned = 0
        while True:
            while have and buf[0] in b"\r\n":  # RFC 9112 2.2: ignore CRLF before a request
                view[: have - 1] = view[1:have]
                have -= 1
            end = buf.find(b"\r\n\r\n", max(0, scanned - 3), have)
            if end >= 0:
                if end > limit:
                    raise Refused(431, "request head too large")
                return end, have
            if have >= limit:
                raise Refused(431, "request head too large")
            scanned = have
            have += self._recv_request(conn, view, have, deadline)

    def _recv_request(self, conn: Connection, into: memoryview, at: int, deadline: float) -> int:
        """Read more of a request begun: ``Refused`` 408 past ``deadline`` (however the
        bytes trickle in), 503 once its slot was taken for a new connection.

        Each read takes what has arrived without waiting (``MSG_DONTWAIT``); only when
        nothing has does it wait, for the time left. A body that is already in the
        socket's buffer (a client on loopback sends it at once) thus costs one system
        call per read, with no timeout to set first and no poll before it."""
        sock = conn.sock
        while not conn.evicted:  # evicted: its read side is shut down
            if time.monotonic() >= deadline:
                break
            try:
                if n := sock.recv_into(into[at:], 0, socket.MSG_DONTWAIT):
                    return n
            except BlockingIOError:
                if conn.readable(deadline - time.monotonic()):
                    continue
                break  # nothing more within the deadline
            if not conn.evicted:
                raise PeerClosed
        if conn.evicted:
            raise Refused(503, "too many connections")
        raise Refused(408, f"request not received within {self.limits.request_timeout_s:g} s")


def _failed(request: Request, exc: Exception) -> Response:
    """The 500 answer to a handler that raised, logged in one line (no traceback ever
    reaches a client)."""
    text = str(exc).splitlines()
    logger.error(
        "local API %s %s failed: %s: %s",
        request.method,
        request.path,
        type(exc).__name__,
        text[0] if text else "",
    )
    logger.debug("local API handler failure", exc_info=True)
    return error_response(500, "internal error")


def _recv_idle(conn: Connection, into: memoryview, keep_alive_s: float) -> int:
    """The first bytes of the next request (at most ``FIRST_READ``), waited for up to
    ``keep_alive_s`` seconds (``TimeoutError`` after that; ``PeerClosed`` if the client
    closed, or ``stop`` or an eviction shut the connection down: a shutdown wakes a
    blocked ``recv`` as it wakes ``poll``)."""
    if conn.idle_bounded:  # a blocking recv, bounded by the kernel (SO_RCVTIMEO)
        try:
            n = conn.sock.recv_into(into, FIRST_READ)
        except BlockingIOError:  # EAGAIN: the keep-alive timeout ran out
            raise TimeoutError(f"no request within {keep_alive_s:g} s of keep-alive") from None
        if not n:
            raise PeerClosed
        return n
    deadline = time.monotonic() + keep_alive_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not conn.readable(left):
            raise TimeoutError(f"no request within {keep_alive_s:g} s of keep-alive")
        try:
            n = conn.sock.recv_into(into, FIRST_READ, socket.MSG_DONTWAIT)
        except BlockingIOError:  # woken for nothing: wait for the time left
            continue
        if not n:
            raise PeerClosed
        return n
