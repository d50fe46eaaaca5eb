"""The HTTP transport's timeouts and connection policy on real loopback sockets: idle
keep-alive, a whole-request deadline that trickling cannot stretch (408), a write
deadline for a client that does not read, a slow handler never cut off, and the fair
policy when ``max_connections`` are open (the connection that has waited longest on
its client gives up its slot; 503 only when every connection is busy)."""

from __future__ import annotations

import contextlib
import json
import select
import threading
import time
from collections.abc import Iterator

import pytest

from agent.serving.http_server import HttpServer
from agent.serving.http_slots import Phase
from agent.serving.http_wire import Limits, Request, Response
from tests.support.ports import wait_until
from tests.support.raw_http import Client, post

BIG = memoryview(bytes(64 * 1024 * 1024))  # more than loopback socket buffers hold


class Handlers:
    """``/sleep`` takes 0.6 s, ``/block`` waits for ``release``, ``/big`` answers 64 MiB,
    anything else answers at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = threading.Semaphore(0)
        self.answered_big = threading.Event()

    def __call__(self, request: Request) -> Response:
        if request.path == "/sleep":
            time.sleep(0.6)
        elif request.path == "/block":
            self.blocked.release()
            assert self.release.wait(30)
        elif request.path == "/big":
            self.answered_big.set()
            return Response(200, (BIG,), content_type="application/octet-stream")
        return Response(200, (json.dumps({"path": request.path}).encode(),))


@pytest.fixture
def handlers() -> Iterator[Handlers]:
    h = Handlers()
    yield h
    h.release.set()


class Harness:
    """Servers and raw clients, every one of them stopped or closed at the end."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self.servers: list[HttpServer] = []
        self.clients: list[Client] = []

    def serve(self, limits: Limits) -> HttpServer:
        srv = HttpServer(self.handlers, "127.0.0.1", 0, limits=limits)
        srv.start()
        self.servers.append(srv)
        return srv

    def client(self, srv: HttpServer) -> Client:
        c = Client(srv)
        self.clients.append(c)
        return c


@pytest.fixture
def harness(handlers: Handlers) -> Iterator[Harness]:
    h = Harness(handlers)
    try:
        yield h
    finally:
        handlers.release.set()
        for c in h.clients:
            c.close()
        for srv in h.servers:
            srv.stop(5)


def test_idle_keep_alive_connections_time_out(harness: Harness) -> None:
    c = harness.client(harness.serve(Limits(keep_alive_s=0.2)))
    c.send(b"GET / HTTP/1.1\r\n\r\n")
    assert c.answer().status == 200
    assert c.closed()  # blocks until the server gives up on the idle connection


def test_a_trickled_request_gets_408_at_its_deadline_and_is_closed(harness: Harness) -> None:
    """One byte every 50 ms never stalls a read for long, but the whole request has
    0.5 s: the server answers 408 once it is over, and closes."""
    c = harness.client(harness.serve(Limits(request_timeout_s=0.5, keep_alive_s=30)))
    raw = post("/slow", b"x" * 2000)
    first, answered_while_trickling = time.monotonic(), False
    for i in range(100):  # 5 s of trickle at most, a 10th of the request
        if select.select([c.sock], [], [], 0)[0]:
            answered_while_trickling = True  # not because the bytes stopped coming
            break
        c.send(raw[i : i + 1])
        time.sleep(0.05)
    assert answered_while_trickling
    answer = c.answer()
    elapsed = time.monotonic() - first
    assert answer.status == 408, answer
    assert json.loads(answer.body) == {"error": "request not received within 0.5 s"}
    assert answer.headers["connection"] == "close" and c.closed()
    assert elapsed >= 0.5  # never before the deadline (counted from its first byte)


def test_a_slow_handler_is_not_cut_off_by_the_deadlines(harness: Harness) -> None:
    c = harness.client(harness.serve(Limits(request_timeout_s=0.2, write_timeout_s=0.2)))
    c.send(b"GET /sleep HTTP/1.1\r\n\r\n")  # 0.6 s in the handler, 3x each deadline
    assert c.answer().status == 200
    c.send(b"GET /after HTTP/1.1\r\n\r\n")  # and the connection goes on
    assert json.loads(c.answer().body) == {"path": "/after"}


def test_an_answer_the_client_does_not_read_is_cut_off(harness: Harness) -> None:
    srv = harness.serve(Limits(write_timeout_s=0.3))
    c = harness.client(srv)
    c.send(b"GET /big HTTP/1.1\r\n\r\n")  # and read nothing
    assert harness.handlers.answered_big.wait(10)
    wait_until(lambda: srv.active_connections == 0, 10, "the connection cut off")
    received = 0
    with contextlib.suppress(ConnectionResetError):
        while chunk := c.sock.recv(1 << 20):
            received += len(chunk)
    assert received < len(BIG)


@pytest.mark.parametrize("oldest", ["idle", "reading"])
def test_when_full_the_connection_waiting_longest_gives_up_its_slot(
    harness: Harness, oldest: str
) -> None:
    """``oldest``: idle since its answer (closed unanswered), or still reading a request
    begun first (503); the newer idle connection and the new one are both served."""
    srv = harness.serve(Limits(max_connections=2))
    a, b = harness.client(srv), harness.client(srv)
    if oldest == "idle":
        a.send(b"GET /a HTTP/1.1\r\n\r\n")
        assert a.answer().status == 200
    else:
        a.send(b"GET /a HTTP/1.1\r\nHo")  # a request begun and never finished
    b.send(b"GET /b HTTP/1.1\r\n\r\n")
    assert b.answer().status == 200
    # the answers are out; wait for the threads that wrote them to wait on their clients
    # again (a BUSY connection is never taken)
    wait_until(lambda: Phase.BUSY not in srv.phases(), 10, "both connections waiting")
    c = harness.client(srv)  # a third connection: a's slot is taken
    c.send(b"GET /c HTTP/1.1\r\n\r\n")
    assert json.loads(c.answer().body) == {"path": "/c"}
    if oldest == "reading":
        answer = a.answer()
        assert answer.status == 503
        assert json.loads(answer.body) == {"error": "too many connections"}
    assert a.closed()
    b.send(b"GET /b2 HTTP/1.1\r\n\r\n")
    assert json.loads(b.answer().body) == {"path": "/b2"}


def test_when_every_connection_is_busy_a_new_one_gets_503(harness: Harness) -> None:
    srv = harness.serve(Limits(max_connections=2, request_timeout_s=0.2, write_timeout_s=0.2))
    busy = [harness.client(srv), harness.client(srv)]
    for c in busy:
        c.send(b"GET /block HTTP/1.1\r\n\r\n")
    for _ in busy:  # both requests are in the handler: neither slot can be taken
        assert harness.handlers.blocked.acquire(timeout=10)
    answer = harness.client(srv).answer()
    assert answer.status == 503 and json.loads(answer.body) == {"error": "too many connections"}
    harness.handlers.release.set()
    assert [c.answer().status for c in busy] == [200, 200]  # past both deadlines
