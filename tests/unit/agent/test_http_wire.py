"""Request heads (``agent.serving.http_wire.parse_head``): the one-expression check of
well-formed header lines and the line-by-line parse agree on every head, a head seen
before answers as the first time without sharing its headers, and answers are written
whole through a socket buffer that fills (``send_within``)."""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import Any

import pytest

from agent.serving import http_wire
from agent.serving.http_wire import Refused, Response, parse_head, send_response, send_within

LINES = [
    b"Host: a",
    b"Content-Length: 5",
    b"content-length: 5",
    b"Content-Length: 6",
    b"Connection: close",
    b"Connection: Keep-Alive, x",
    b"Expect: 100-continue",
    b"Expect: foo",
    b"X:  spaced \t ",
    b"X:",
    b"X: a\rb",
    b"X: a\r",
    b": nope",
    b"Bad Name: x",
    b"X: a\x00",
    b"X\t: y",
    b"X: \xe9t\xe9",
    b"NoColon",
    b"",
    b"Y: 1",
    b"Y: 2",
]
STARTS = [
    b"GET / HTTP/1.1",
    b"POST /v2/a%20b/infer?x=1 HTTP/1.0",
    b"GET /x HTTP/2.0",
    b"get / HTTP/1.1",
]


def _outcome(head: bytes) -> tuple[object, ...]:
    try:
        r, keep_alive, expect = parse_head(head)
    except Refused as exc:
        return ("refused", exc.status, str(exc))
    return (r.method, r.path, r.query, r.headers, keep_alive, expect)


def _by_line(rest: bytes) -> dict[str, str] | tuple[int, str]:
    try:
        return http_wire._headers_by_line(rest)
    except Refused as exc:
        return (exc.status, str(exc))


def test_the_quick_check_and_the_line_by_line_parse_agree() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        rest = b"\r\n".join(rng.choice(LINES) for _ in range(rng.randrange(1, 5)))
        try:
            quick: dict[str, str] | tuple[int, str] = http_wire._headers(rest)
        except Refused as exc:
            quick = (exc.status, str(exc))
        assert quick == _by_line(rest), rest


def test_a_head_seen_before_parses_alike_and_shares_nothing() -> None:
    rng = random.Random(3)
    for _ in range(500):
        head = rng.choice(STARTS)
        for _ in range(rng.randrange(0, 4)):
            head += b"\r\n" + rng.choice(LINES)
        first, again = _outcome(head), _outcome(head)
        assert first == again, head
    request, _, _ = parse_head(b"GET / HTTP/1.1\r\nHost: a")
    request.headers["host"] = "changed"
    assert parse_head(b"GET / HTTP/1.1\r\nHost: a")[0].headers == {"host": "a"}


@pytest.mark.parametrize("whole", [False, True], ids=["gathered", "one bytes object"])
def test_send_within_writes_everything_through_a_full_buffer(whole: bool) -> None:
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = bytes(range(256)) * 4096  # 1 MiB: many times the socket's buffer
    received = bytearray()

    def read() -> None:
        while chunk := right.recv(65536):
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        if whole:  # the first write is partial: the rest goes as a view of what is left
            send_within(left, (b"head" + data + b"tail",), timeout=10)
        else:
            send_within(left, (b"head", memoryview(data), b"tail"), timeout=10)
    finally:
        left.close()
        reader.join(10)
        right.close()
    assert bytes(received) == b"head" + data + b"tail"


def test_send_within_gives_up_at_its_deadline() -> None:
    left, right = socket.socketpair()
    try:
        with pytest.raises(TimeoutError):
            send_within(left, (bytes(64 * 1024 * 1024),), timeout=0.2)  # nobody reads
    finally:
        left.close()
        right.close()


def test_idle_timeout_bounds_a_blocking_read_and_a_shutdown_still_wakes_it() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname()[:2])
    conn, _ = server.accept()
    try:
        assert not http_wire.idle_timeout(conn, 0.0005)  # under 1 ms: the kernel's "none"
        assert http_wire.idle_timeout(conn, 0.2)
        with pytest.raises(BlockingIOError):  # nothing sent: EAGAIN once 0.2 s are over
            conn.recv(1)
        assert http_wire.idle_timeout(conn, 5)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(conn.recv(1)))
        reader.start()
        time.sleep(0.05)  # let it block (a shutdown before the read gives b"" as well)
        http_wire.shutdown(conn)  # as ``stop`` or an eviction does
        reader.join(5)
        assert got == [b""]
    finally:
        for sock in (conn, client, server):
            sock.close()


def test_an_answer_whose_headers_cannot_be_kept_is_still_sent() -> None:
    a, b = socket.socketpair()
    with a, b:
        # a list in the tuple (outside the type, as a handler might): formatted, not kept
        headers: Any = (["X-A", "1"],)
        send_response(
            a, Response(200, (b"x",), headers=headers), close=True, server=b"s", timeout=1
        )
        assert b.recv(999).startswith(b"HTTP/1.1 200 OK\r\n")
