"""HTTP/1.1 on the wire for ``agent.serving.http_server``: request heads in, responses out.

Pure parsing and formatting over bytes and sockets, no threads. ``parse_head`` turns a
request head into a ``Request`` (or raises ``Refused`` with the status to answer: 400
malformed, 417 unknown ``Expect``, 505 other HTTP versions), ``body_length`` applies the
body rules (411 without ``Content-Length``, 413 over the limit, decided before a byte
of the body is read), ``send_response`` writes one answer with a single gather write
within a deadline, ``refuse`` answers a connection that is not served and closes it.

Both exceptions are private to the transport (subclasses of ``AgentError``, never seen
by a client): ``Refused`` becomes an ``{"error": "<one line>"}`` answer, ``PeerClosed``
ends the connection silently.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import select
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import unquote

from agent.errors import AgentError

Buffer = bytes | bytearray | memoryview
#: (headers, content length) -> a writable buffer of exactly that length for the body
BodyAllocator = Callable[[Mapping[str, str], int], memoryview]

READ_CHUNK = 64 * 1024
#: the first read of a request (a head is nearly always far smaller): what comes after
#: the head in it is copied into the body buffer, the rest of the body is read there
#: directly (a whole chunk would copy up to 64 KB of a large body twice)
FIRST_READ = 4096
_METHOD = re.compile(rb"[A-Z]{1,20}")
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_NAME = re.compile(_TOKEN)
#: header lines (after the request line) as nearly every client sends them: a token, a
#: colon, a value without CR, LF or NUL
_FIELD_LINES = re.compile(rb"%s:[^\r\n\0]*(?:\r\n%s:[^\r\n\0]*)*" % (_TOKEN, _TOKEN))
#: request heads parsed lately -> (method, path, query, headers, keep-alive, expect)
_HEADS: dict[bytes, tuple[str, str, str, dict[str, str], bool, bool]] = {}
_KEEP_HEADS = 64
_KEEP_HEAD_BYTES = 2048
#: header names as sent -> lower-case text (a client sends the same few every time)
_NAMES: dict[bytes, str] = {}
_KEEP_NAMES = 256
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_LINGER_S = 1.0
#: a request's body until it is read (read-only and empty: one for all)
_NO_BODY = memoryview(b"")
#: (status, content type, server, extra headers, close) -> an answer's head around the
#: value of its ``Content-Length``
_AROUND: dict[tuple[int, str, bytes, object, bool], tuple[bytes, bytes]] = {}
_KEEP_AROUND = 64
#: ``struct timeval`` as the kernel reads ``SO_RCVTIMEO`` (two C longs: 64-bit Linux)
_TIMEVAL = struct.Struct("@ll")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client may send or hold."""

    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    max_connections: int = 64  # when all are open, see ``agent.serving.http_slots``
    keep_alive_s: float = 30.0  # idle before the first byte of a request
    request_timeout_s: float = 10.0  # from a request's first byte to its last (head + body)
    write_timeout_s: float = 10.0  # to write one whole answer (a client that does not read)


@dataclass(slots=True)  # slots: made and filled on every request
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: memoryview


@dataclass(slots=True)
class Response:
    status: int
    body: Sequence[Buffer] = (b"",)  # written one after the other (no join)
    content_type: str = "application/json"
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)


Handler = Callable[[Request], Response]


class Refused(AgentError):
    """A request the transport answers itself with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PeerClosed(AgentError):
    """The client went away (or stop() closed an idle connection): nothing to answer."""


def error_response(status: int, message: str) -> Response:
    line = message.splitlines()[0] if message else HTTPStatus(status).phrase
    return Response(status, (json.dumps({"error": line}).encode(),))


def default_body(_: Mapping[str, str], length: int) -> memoryview:
    return memoryview(bytearray(length))


def parse_head(head: bytes) -> tuple[Request, bool, bool]:
    """(request without its body, keep-alive, expects 100-continue) or ``Refused``.

    A keep-alive client sends the same head again and again (the same model, the same
    body size), so the heads parsed last are kept (``_KEEP_HEADS`` of at most 2 KB
    each; the table is emptied when full): a head seen before costs a dictionary lookup
    and a copy of its headers, not a parse."""
    seen = _HEADS.get(head)
    if seen is not None:
        method, path, query, headers, keep_alive, expect = seen
        return Request(method, path, query, headers.copy(), _NO_BODY), keep_alive, expect
    request, keep_alive, expect = _parse_head(head)
    if len(head) <= _KEEP_HEAD_BYTES:
        if len(_HEADS) >= _KEEP_HEADS:
            _HEADS.clear()
        r = request
        _HEADS[head] = (r.method, r.path, r.query, r.headers.copy(), keep_alive, expect)
    return request, keep_alive, expect


def _parse_head(head: bytes) -> tuple[Request, bool, bool]:
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not parts[1].startswith(b"/"):
        raise Refused(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version.startswith(b"HTTP/"):
            raise Refused(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        raise Refused(400, "malformed request line")
    headers = _headers(rest)
    connection = headers.get("connection")
    if connection is None:
        keep_alive = version == b"HTTP/1.1"
    else:
        tokens = {t.strip().lower() for t in connection.split(",")}
        keep_alive = "close" not in tokens if version == b"HTTP/1.1" else "keep-alive" in tokens
    expect = headers.get("expect", "").lower()
    if expect and expect != "100-continue":
        raise Refused(417, f"unsupported Expect: {expect[:40]}")
    path, _, query = target.decode("latin-1").partition("?")
    if "%" in path:
        path = unquote(path)
    request = Request(method.decode(), path, query, headers, _NO_BODY)
    return request, keep_alive, bool(expect) and version == b"HTTP/1.1"


def _headers(rest: bytes) -> dict[str, str]:
    """The header lines after the request line: lower-case names, values without the
    spaces and tabs around them, repeated headers joined with ", " (a repeated
    ``Content-Length`` must repeat the same value). One regular expression checks every
    line at once; a head it does not pass (a bad line, or a bare CR in a value) is
    parsed line by line, which finds the error of its first bad line."""
    if not rest:
        return {}
    if not _FIELD_LINES.fullmatch(rest):
        return _headers_by_line(rest)
    headers: dict[str, str] = {}
    names = _NAMES
    for line in rest.split(b"\r\n"):
        raw, _, value = line.partition(b":")
        key = names.get(raw)
        if key is None:
            key = raw.decode("ascii").lower()
            if len(names) < _KEEP_NAMES:
                names[raw] = key
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            _add(headers, key, text)
        else:
            headers[key] = text
    return headers


def _headers_by_line(rest: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in rest.split(b"\r\n") if rest else ():
        name, sep, value = raw.partition(b":")
        if not sep or not _NAME.fullmatch(name) or b"\n" in value or b"\0" in value:
            raise Refused(400, "malformed header line")
        _add(headers, name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1"))
    return headers


def _add(headers: dict[str, str], key: str, text: str) -> None:
    if key in headers:
        if key == "content-length" and headers[key] != text:
            raise Refused(400, "conflicting Content-Length headers")
        text = headers[key] if key == "content-length" else f"{headers[key]}, {text}"
    headers[key] = text


def body_length(request: Request, limits: Limits) -> int:
    """The body's length from its headers, or ``Refused`` (before any of it is read)."""
    headers = request.headers
    if "transfer-encoding" in headers:
        if "content-length" in headers:
            raise Refused(400, "both Transfer-Encoding and Content-Length")
        raise Refused(411, "chunked bodies are not supported: send Content-Length")
    text = headers.get("content-length")
    if text is None:
        if request.method in _BODY_METHODS:
            raise Refused(411, "Content-Length required")
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise Refused(400, f"bad Content-Length {text[:40]!r}")
    length = int(text)
    if length > limits.max_body_bytes:
        raise Refused(413, f"body of {length} bytes exceeds the limit of {limits.max_body_bytes}")
    return length


def send_response(
    sock: socket.socket,
    response: Response,
    *,
    close: bool,
    server: bytes,
    timeout: float,
    head_only: bool = False,
) -> None:
    """Write ``response`` (only its head for HEAD); one syscall unless it is large.

    The whole answer must be written within ``timeout`` seconds, else ``TimeoutError``."""
    body = response.body
    length = sum(map(len, body))
    head = _head(response, length, close, server)
    if head_only:
        send_within(sock, (head,), timeout)
    elif length < READ_CHUNK:
        send_within(sock, (b"".join([head, *body]),), timeout)
    else:
        send_within(sock, (head, *body), timeout)


def _head(response: Response, length: int, close: bool, server: bytes) -> bytes:
    """The status line and headers of an answer whose body is ``length`` bytes: all but
    the length kept from the last answer like it (a handful of statuses, types and
    header sets: a binary answer's one extra header repeats with its JSON header's
    length, which a repeated request repeats), so most answers format one number."""
    headers = response.headers
    key = (response.status, response.content_type, server, headers, close)
    keep = type(headers) is tuple
    around = None
    if keep:
        try:
            around = _AROUND.get(key)
        except TypeError:  # an unhashable header (a list in the tuple): sent, not kept
            keep = False
    if around is None:
        around = _around(response, close, server)
        if keep:
            if len(_AROUND) >= _KEEP_AROUND:
                _AROUND.clear()
            _AROUND[key] = around
    return b"%s%d%s" % (around[0], length, around[1])


def _around(response: Response, close: bool, server: bytes) -> tuple[bytes, bytes]:
    """(the head up to the value of ``Content-Length``, the head after it)."""
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    start = b"HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: %s\r\nContent-Length: " % (
        response.status,
        reason.encode(),
        server,
        response.content_type.encode("latin-1"),
    )
    extra = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in response.headers)
    end = b"Connection: close\r\n\r\n" if close else b"Connection: keep-alive\r\n\r\n"
    return start, b"\r\n%s%s" % (extra, end)


def send_within(sock: socket.socket, buffers: Sequence[Buffer], timeout: float) -> None:
    """Write ``buffers`` one after the other within ``timeout`` seconds, else
    ``TimeoutError``. Each write is ``MSG_DONTWAIT``: the socket's own blocking mode and
    timeout play no part, and a write that fits the socket's buffer (nearly every
    answer) is one system call, without a wait or a timeout to set first."""
    if len(buffers) == 1 and type(first := buffers[0]) is bytes:  # nearly every answer
        try:
            sent = sock.send(first, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == len(first):
            return
        buffers = (memoryview(first)[sent:],)
    deadline = time.monotonic() + timeout
    pending = [memoryview(b).cast("B") for b in buffers if len(b)]
    while pending:
        try:
            if len(pending) == 1:
                sent = sock.send(pending[0], socket.MSG_DONTWAIT)
            else:
                sent = sock.sendmsg(pending, (), socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        while pending and sent >= len(pending[0]):
            sent -= len(pending[0])
            pending.pop(0)
        if not pending:
            return
        if sent:
            pending[0] = pending[0][sent:]
        left = deadline - time.monotonic()
        if left <= 0 or not _writable(sock, left):
            raise TimeoutError(f"answer not written within {timeout:g} s")


def idle_timeout(sock: socket.socket, seconds: float) -> bool:
    """Bound a blocking read of ``sock`` to ``seconds`` in the kernel (``SO_RCVTIMEO``,
    set once per connection): then waiting for a request's first byte is one ``recv``,
    not a ``poll`` and a ``recv``. False where that cannot be relied on (the value does
    not read back: e.g. another ``struct timeval`` layout, or a timeout under 1 ms,
    which the kernel would take as none); the caller then waits with ``poll``."""
    if not 0.001 <= seconds < 2**31 or not hasattr(socket, "SO_RCVTIMEO"):
        return False
    whole = int(seconds)
    value = _TIMEVAL.pack(whole, int((seconds - whole) * 1_000_000))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        back = _TIMEVAL.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    except (OSError, struct.error):
        back = (0, 0)
    if abs(back[0] + back[1] / 1_000_000 - seconds) < 0.05:  # the kernel counts in ticks
        return True
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, bytes(_TIMEVAL.size))
    return False


def _writable(sock: socket.socket, timeout: float) -> bool:
    waiting = select.poll()
    waiting.register(sock, select.POLLOUT)
    return bool(waiting.poll(max(0, math.ceil(timeout * 1000))))


def shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def close(sock: socket.socket, *, linger: bool) -> None:
    """Close; after an answer sent before the body was read, read (and drop) what the
    client is still sending for a moment, so that it sees the answer, not a reset."""
    if linger:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.2)
            scratch = bytearray(READ_CHUNK)
            deadline = time.monotonic() + _LINGER_S
            while time.monotonic() < deadline and sock.recv_into(scratch):
                pass
    sock.close()


def refuse(sock: socket.socket, response: Response, *, server: bytes) -> None:
    """Answer a connection not served with ``response`` (within 1 s), then close it."""
    try:
        sock.setblocking(False)
        try:  # drop what already arrived, so closing does not reset the answer away
            while sock.recv(READ_CHUNK):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        send_response(sock, response, close=True, server=server, timeout=1.0)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()
