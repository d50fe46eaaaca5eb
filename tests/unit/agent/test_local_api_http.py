"""The local API's HTTP/1.1 transport on real loopback sockets: keep-alive, pipelining,
bounded heads and bodies, clean 400/411/413/417/431/505 answers, 100-continue, and a
handler failure that never shows a traceback. Timeouts and the connection limit:
``test_local_api_http_limits.py``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from agent.errors import AgentError
from agent.serving.http_server import HttpServer
from agent.serving.http_wire import Limits, Request, Response
from tests.support.raw_http import Client, post


def _handler(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("secret detail\nsecond line")
    body = json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "n": len(request.body),
        }
    ).encode()
    return Response(200, (body, bytes(request.body)), content_type="text/plain")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer(
        _handler,
        "127.0.0.1",
        0,
        limits=Limits(
            max_header_bytes=1024, max_body_bytes=4096, max_connections=4, keep_alive_s=5
        ),
    )
    srv.start()
    yield srv
    srv.stop(5)


@pytest.fixture
def client(server: HttpServer) -> Iterator[Client]:
    c = Client(server)
    yield c
    c.close()


def test_keep_alive_and_pipelined_requests_answer_in_order(client: Client) -> None:
    client.send(post("/a?q=1", b"hello"))
    first = client.answer()
    assert first.status == 200 and first.headers["connection"] == "keep-alive"
    meta, _, echoed = first.body.partition(b"}")
    assert json.loads(meta + b"}") == {"method": "POST", "path": "/a", "query": "q=1", "n": 5}
    assert echoed == b"hello"
    # three requests in one write, the last split over two writes
    client.send(post("/b", b"12") + b"GET /c%20d HTTP/1.1\r\n\r\n" + post("/e", b"xyz")[:20])
    client.send(post("/e", b"xyz")[20:])
    answers = [client.answer() for _ in range(3)]
    assert [json.loads(a.body.partition(b"}")[0] + b"}")["path"] for a in answers] == [
        "/b",
        "/c d",
        "/e",
    ]
    assert answers[2].body.endswith(b"xyz")


def test_http_10_closes_unless_asked_to_keep_alive(server: HttpServer) -> None:
    c = Client(server)
    c.send(b"GET / HTTP/1.0\r\n\r\n")
    assert c.answer().headers["connection"] == "close" and c.closed()
    c.close()
    c = Client(server)
    c.send(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert c.answer().headers["connection"] == "keep-alive"
    assert c.answer().headers["connection"] == "close" and c.closed()
    c.close()


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET nope HTTP/1.1\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nno-colon\r\n\r\n", 400, "malformed header line"),
        (b"POST / HTTP/1.1\r\n\r\n", 411, "Content-Length required"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            411,
            "chunked bodies are not supported",
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
            400,
            "both Transfer-Encoding and Content-Length",
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            400,
            "conflicting Content-Length",
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "bad Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400, "bad Content-Length"),
        (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417, "unsupported Expect"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431, "request head too large"),
    ],
)
def test_bad_requests_get_one_line_errors_and_a_close(
    client: Client, raw: bytes, status: int, message: str
) -> None:
    client.send(raw)
    answer = client.answer()
    assert answer.status == status
    assert message in json.loads(answer.body)["error"]
    assert answer.headers["connection"] == "close" and client.closed()


def test_a_body_over_the_limit_is_refused_before_it_is_sent(client: Client) -> None:
    # announce 1 GB and send none of it: the answer comes from the headers alone
    client.send(b"POST /big HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n")
    answer = client.answer()
    assert answer.status == 413
    assert json.loads(answer.body) == {
        "error": "body of 1000000000 bytes exceeds the limit of 4096"
    }


def test_a_client_still_sending_a_refused_body_sees_the_answer(server: HttpServer) -> None:
    c = Client(server)
    c.send(post("/big", b"z" * 200_000))  # the server lingers, reading and dropping it
    assert c.answer().status == 413
    c.close()


def test_expect_100_continue(client: Client) -> None:
    client.send(b"POST /e HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert client.answer(head_only=True).status == 100
    client.send(b"abc")
    answer = client.answer()
    assert answer.status == 200 and answer.body.endswith(b"abc")


def test_head_gets_headers_only(client: Client) -> None:
    client.send(b"HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n")
    head = client.answer(head_only=True)
    assert head.status == 200 and int(head.headers["content-length"]) > 0
    assert json.loads(client.answer().body)["path"] == "/g"


def test_handler_failure_is_a_500_without_details(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="agent.serving.http_server"):
        client.send(b"GET /boom HTTP/1.1\r\n\r\n")
        answer = client.answer()
    assert answer.status == 500 and json.loads(answer.body) == {"error": "internal error"}
    assert b"secret" not in answer.body and b"Traceback" not in answer.body
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in record.getMessage() and record.exc_info is None
    client.send(b"GET /after HTTP/1.1\r\n\r\n")  # the connection goes on
    assert client.answer().status == 200


def test_bind_failure_is_one_line(server: HttpServer) -> None:
    assert server.url is not None
    port = int(server.url.rsplit(":", 1)[1])
    other = HttpServer(_handler, "127.0.0.1", port)
    with pytest.raises(AgentError, match=f"local API cannot bind 127.0.0.1:{port}: ") as info:
        other.start()
    assert "\n" not in str(info.value)
