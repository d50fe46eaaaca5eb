"""The agent's HTTP client for its few requests to the control plane: ``http.client``.

The agent makes a handful of requests in its life: blob and trust-document downloads
(``agent.deployment.fetch``), enrollment and renewal (``agent.identity.enroll``). httpx
did them before, and a process cannot unload a module: the first deployment or renewal
left httpx, httpcore, h11, anyio and certifi's CA bundle in the agent for good (~7.8 MB
resident, ~160 modules, measured in the agent process). ``http.client`` is already
loaded (``agent.cli``) and does what these requests need:

- ``request()``: one request on a connection of its own (no pool: a bundle is a few
  files), redirects followed where asked (at most ``MAX_REDIRECTS``, ``Location``
  resolved against the request's URL, a 303 becomes a bodiless GET), a connect timeout
  and a read timeout (no byte for that long: a stall), used as a context manager;
- ``Cancel``: cuts short, from another thread, every request sent with it and refuses
  new ones (the agent stopping): a request waiting for its answer's head or its body
  ends at once; one still connecting ends when its connect returns (at most the connect
  timeout: a blocking ``connect`` cannot be interrupted);
- ``Response.iter_bytes()``: the body in chunks; a body that ends before its
  ``Content-Length`` raises ``TransportError`` (``http.client`` would return short
  without a word, and a resumable download must know);
- what httpx took from the environment (``trust_env``): an ``http_proxy`` /
  ``https_proxy`` (``no_proxy`` honoured; HTTPS through a proxy with CONNECT) and
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``; HTTPS verifies the server against those, else
  certifi's CA bundle (what httpx used), else the system's.

Errors (transport only; an HTTP status is an answer, the caller judges it)::

    TransportError        refused, reset, cut short, TLS failure, malformed answer
    └── ReadTimeout       no byte for the read timeout
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.request import getproxies, proxy_bypass

MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: request headers not sent on to another origin after a redirect (lower case)
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


class TransportError(Exception):
    """The request got no complete answer (the cause is chained)."""


class ReadTimeout(TransportError):
    """The server sent no byte for the read timeout."""


def _shut(conn: http.client.HTTPConnection) -> None:
    """Shut ``conn``'s socket down from another thread: a read waiting on it ends (EOF).
    The plain socket's ``shutdown`` even under TLS: ``SSLSocket.shutdown`` drops its SSL
    object first, and a read in the other thread between its own check of that object
    and its use raises ``ValueError`` / ``AttributeError`` instead of seeing EOF."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed or reset
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Cancel:
    """Cuts short every request sent with it, from another thread, and refuses new ones
    (``TransportError``). A connection is held from before its connect until its
    response is closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[http.client.HTTPConnection] = set()
        self.cancelled = False

    def cancel(self) -> None:
        # under the lock: a connection is released before it is closed, so its socket's
        # file descriptor cannot be another socket's by the time it is shut down here
        with self._lock:
            self.cancelled = True
            for conn in self._conns:
                _shut(conn)

    def _hold(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self.cancelled:
                raise TransportError("cancelled")
            self._conns.add(conn)

    def _connected(self, conn: http.client.HTTPConnection) -> None:
        """After ``connect``: a cancel that came while it was connecting takes effect."""
        with self._lock:
            if self.cancelled:
                _shut(conn)

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conns.discard(conn)


class Response:
    """A status, headers and a streamed body; closes its connection when done."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        cancel: Cancel | None = None,
    ) -> None:
        self._conn = conn
        self._resp = resp
        self._cancel = cancel
        self.status_code = resp.status
        self.headers = resp.headers

    def iter_bytes(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._resp.read1(CHUNK_BYTES)  # what has arrived: never waits for more
            except TimeoutError as exc:
                raise ReadTimeout(f"ReadTimeout: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            if not chunk:
                left = self._resp.length
                if left:  # closed before the announced length: a cut transfer
                    raise TransportError(f"connection closed with {left} bytes of the body unread")
                return
            yield chunk

    def read(self, limit: int) -> bytes:
        """The body, at most ``limit`` + 1 bytes of it (so a caller can tell "more")."""
        body = bytearray()
        for chunk in self.iter_bytes():
            body += chunk
            if len(body) > limit:
                break
        return bytes(body)

    def close(self) -> None:
        if self._cancel is not None:  # released first (``Cancel.cancel``)
            self._cancel._release(self._conn)
        self._resp.close()
        self._conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    connect_timeout_s: float,
    read_timeout_s: float,
    follow_redirects: bool = False,
    cancel: Cancel | None = None,
) -> Response:
    """Send one request (see the module docstring); the caller closes the response.

    A redirect to another origin (scheme, host or port) drops the credentials headers
    (``_CREDENTIALS``), one from https to http is refused, and a 303 (or a 301/302 to a
    POST, as browsers and httpx do) becomes a bodiless GET."""
    sent = dict(headers or {})
    try:
        for _ in range(MAX_REDIRECTS + 1):
            resp = _send(method, url, sent, body, connect_timeout_s, read_timeout_s, cancel)
            location = resp.headers.get("Location")
            if not follow_redirects or resp.status_code not in _REDIRECTS or not location:
                return resp
            resp.close()
            before, url = urlsplit(url), urljoin(url, location)
            after = urlsplit(url)
            if before.scheme == "https" and after.scheme == "http":
                raise TransportError("refused a redirect from https to http")
            if (before.scheme, before.netloc) != (after.scheme, after.netloc):
                sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIALS}
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None
    except ValueError as exc:  # a malformed URL or proxy: a bad port, a non-ASCII path
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    raise TransportError(f"more than {MAX_REDIRECTS} redirects")


def _send(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    connect_timeout_s: float,
    read_timeout_s: float,
    cancel: Cancel | None,
) -> Response:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    sent = {"Accept-Encoding": "identity", **headers}
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    proxy = _proxy_for(parts.scheme, parts.hostname)
    conn: http.client.HTTPConnection
    if proxy is not None:  # as httpx did (trust_env): *_proxy / no_proxy from the environment
        host, port, auth = proxy
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout_s, context=_tls_context()
            )
            conn.set_tunnel(parts.hostname, parts.port, headers=auth)  # CONNECT, then TLS
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout_s)
            target = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
            sent.update(auth)
    elif parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=connect_timeout_s, context=_tls_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=connect_timeout_s)
    if cancel is not None:
        cancel._hold(conn)
    try:
        return _exchange(conn, method, target, body, sent, read_timeout_s, cancel)
    except BaseException:
        if cancel is not None:  # released first (``Cancel.cancel``)
            cancel._release(conn)
        conn.close()
        raise


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: Mapping[str, str],
    read_timeout_s: float,
    cancel: Cancel | None,
) -> Response:
    """Connect, send, read the answer's head; errors as ``TransportError``."""
    try:
        try:
            conn.connect()
        except TimeoutError as exc:
            raise TransportError(f"ConnectTimeout: {exc}") from exc
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout_s)  # from here on: no byte for this long
        if cancel is not None:
            cancel._connected(conn)
        conn.request(method, target, body=body, headers=headers)
        return Response(conn, conn.getresponse(), cancel)
    except TimeoutError as exc:
        raise ReadTimeout(f"ReadTimeout: {exc}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc


def _proxy_for(scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
    """(host, port, Proxy-Authorization header) of the proxy the environment names for
    ``scheme`` (``http_proxy`` / ``https_proxy``, ``no_proxy``: ``urllib``'s rules), or
    None. Only ``http://`` proxies (an ``https`` URL goes through them with CONNECT)."""
    proxy = getproxies().get(scheme)
    if not proxy or proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        raise TransportError(f"unsupported proxy {parts.scheme}://{parts.hostname or ''}")
    auth: dict[str, str] = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return parts.hostname, parts.port or 80, auth


_CONTEXT: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """One verifying context, made at the first HTTPS request, from the CAs httpx used:
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` if set, else certifi's bundle (the system's
    where certifi is not installed)."""
    global _CONTEXT
    if _CONTEXT is None:
        if os.environ.get("SSL_CERT_FILE"):
            _CONTEXT = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            _CONTEXT = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            try:
                import certifi

                _CONTEXT = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                _CONTEXT = ssl.create_default_context()
    return _CONTEXT
