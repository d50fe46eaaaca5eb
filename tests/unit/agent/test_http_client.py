"""``agent.http_client`` against a real ``http.server`` on loopback: redirects, a body cut
short, a stalled server, a refused connection, bounded reads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

import pytest

from agent import http_client

BODY = bytes(range(256)) * 64


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("http://"):  # asked as a proxy: the absolute URL
            auth = self.headers.get("Proxy-Authorization", "")
            self._answer(200, BODY, {"X-Proxied": self.path, "X-Auth": auth})
        elif self.path == "/blob":
            seen = {"X-Range": self.headers.get("Range", "")}
            self._answer(
                200, BODY, seen | {"X-Authorization": self.headers.get("Authorization", "")}
            )
        elif self.path.startswith("/go?"):  # a redirect to the URL in the query, as given
            self._answer(302, b"", {"Location": unquote(self.path[4:])})
        elif self.path == "/moved":
            self._answer(302, b"", {"Location": "blob"})  # relative, as servers may send
        elif self.path == "/loop":
            self._answer(307, b"", {"Location": "/loop"})
        elif self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            time.sleep(1.0)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        data = self.rfile.read(length)
        if self.path == "/see-other":
            self._answer(303, b"", {"Location": "/blob"})
        else:
            self._answer(200, data, {"Content-Type": self.headers["Content-Type"]})


@pytest.fixture
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str, **kwargs: object) -> http_client.Response:
    return http_client.request(
        "GET",
        url,
        connect_timeout_s=5,
        read_timeout_s=5,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_body_streams_in_chunks_with_the_headers_sent(base: str) -> None:
    with _get(f"{base}/blob", headers={"Range": "bytes=5-"}) as resp:
        assert resp.status_code == 200 and resp.headers["X-Range"] == "bytes=5-"
        assert b"".join(resp.iter_bytes()) == BODY


def test_redirects_are_followed_only_when_asked(base: str) -> None:
    with _get(f"{base}/moved") as resp:
        assert resp.status_code == 302
    with _get(f"{base}/moved", follow_redirects=True) as resp:
        assert resp.status_code == 200 and resp.read(len(BODY)) == BODY
    with pytest.raises(http_client.TransportError, match="redirects"):
        _get(f"{base}/loop", follow_redirects=True)


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/x", "/caf\u00e9", "http://h:abc/"])
def test_a_malformed_redirect_is_a_transport_error(base: str, location: str) -> None:
    with pytest.raises(http_client.TransportError):
        _get(f"{base}/go?{quote(location)}", follow_redirects=True)


def test_credentials_go_to_the_same_origin_only(base: str) -> None:
    """A redirect to another origin (here: another port) drops Authorization."""
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    auth = {"Authorization": "Bearer s3cret"}
    try:
        same = quote("/blob")
        with _get(f"{base}/go?{same}", headers=auth, follow_redirects=True) as resp:
            assert resp.headers["X-Authorization"] == "Bearer s3cret"
        elsewhere = quote(f"http://127.0.0.1:{other.server_address[1]}/blob")
        with _get(f"{base}/go?{elsewhere}", headers=auth, follow_redirects=True) as resp:
            assert resp.status_code == 200 and resp.headers["X-Authorization"] == ""
    finally:
        other.shutdown()
        other.server_close()


def test_a_303_after_a_post_becomes_a_get(base: str) -> None:
    with http_client.request(
        "POST",
        f"{base}/see-other",
        body=b"{}",
        connect_timeout_s=5,
        read_timeout_s=5,
        follow_redirects=True,
    ) as resp:
        assert resp.status_code == 200 and resp.read(len(BODY)) == BODY


def test_a_post_sends_its_body(base: str) -> None:
    with http_client.request(
        "POST",
        f"{base}/echo",
        headers={"Content-Type": "application/json"},
        body=b'{"a": 1}',
        connect_timeout_s=5,
        read_timeout_s=5,
    ) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.read(100) == b'{"a": 1}'


def test_read_stops_one_byte_past_the_limit(base: str) -> None:
    with _get(f"{base}/blob") as resp:
        assert len(resp.read(10)) > 10  # "more than the limit" is visible to the caller


def test_a_body_cut_short_raises_after_yielding_what_arrived(base: str) -> None:
    got = bytearray()
    with (
        pytest.raises(http_client.TransportError, match="unread"),
        _get(f"{base}/cut") as resp,
    ):
        for chunk in resp.iter_bytes():
            got += chunk
    assert bytes(got) == BODY[:1000]


def test_a_stalled_server_is_a_read_timeout_after_what_arrived(base: str) -> None:
    got = bytearray()
    resp = http_client.request("GET", f"{base}/stall", connect_timeout_s=5, read_timeout_s=0.2)
    with pytest.raises(http_client.ReadTimeout), resp:
        for chunk in resp.iter_bytes():
            got += chunk
    assert bytes(got) == BODY[:100]  # the bytes that came are kept (a resume starts there)


def test_a_cancel_cuts_a_body_short_and_refuses_the_next_request(base: str) -> None:
    cancel = http_client.Cancel()
    got = bytearray()
    resp = http_client.request(
        "GET", f"{base}/stall", connect_timeout_s=5, read_timeout_s=60, cancel=cancel
    )
    with pytest.raises(http_client.TransportError), resp:
        for chunk in resp.iter_bytes():
            got += chunk
            cancel.cancel()  # from another thread in the agent; the read waiting ends
    assert bytes(got) == BODY[:100]
    with pytest.raises(http_client.TransportError, match="cancelled"):
        _get(f"{base}/blob", cancel=cancel)


def test_a_refused_connection_and_a_bad_url_are_transport_errors() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(http_client.TransportError, match="ConnectionRefused"):
            _get(f"http://127.0.0.1:{port}/x")
    with pytest.raises(http_client.TransportError, match="not an http"):
        _get("ftp://example.org/x")


def test_an_http_proxy_from_the_environment_is_used_unless_no_proxy_says(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxy = base.replace("http://", "http://dev%40ice:s3cret@")
    monkeypatch.setenv("http_proxy", proxy)
    with _get("http://blobs.invalid:8080/blob?x=1") as resp:  # resolvable only by the proxy
        assert resp.headers["X-Proxied"] == "http://blobs.invalid:8080/blob?x=1"
        assert resp.headers["X-Auth"] == "Basic ZGV2QGljZTpzM2NyZXQ="  # dev@ice:s3cret
        assert resp.read(len(BODY)) == BODY
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with _get(f"{base}/blob") as resp:  # straight to the server, not through the proxy
        assert "X-Proxied" not in resp.headers
