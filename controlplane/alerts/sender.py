"""One delivery attempt: POST the signed body, never following a redirect; and the retry
policy (capped exponential backoff, a maximum number of attempts)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from controlplane.alerts.schemas import shown_url
from controlplane.alerts.signing import (
    DELIVERY_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
)

USER_AGENT = "EdgeFleet-Webhooks/1"


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt ``n`` (1-based) that fails is retried ``backoff_s * 2**(n-1)`` later (at
    most ``cap_s``) until ``max_attempts`` were made; each attempt may take ``timeout_s``."""

    backoff_s: float = 30.0
    cap_s: float = 3600.0
    max_attempts: int = 10
    timeout_s: float = 10.0

    def delay_s(self, attempts: int) -> float:
        return float(min(self.cap_s, self.backoff_s * 2 ** max(attempts - 1, 0)))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status: int | None
    error: str | None


@dataclass(frozen=True)
class Request:
    url: str
    secret: str
    body: bytes
    event_id: str
    event_type: str
    delivery_id: int


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


#: What is read of a receiver's answer at most (for ``last_error``); the rest is dropped.
MAX_ANSWER_BYTES = 1024


def _answer(response: httpx.Response, deadline: float) -> str | None:
    """At most :data:`MAX_ANSWER_BYTES` of the body, read before ``deadline`` (None: the
    receiver was too slow)."""
    got = b""
    for chunk in response.iter_bytes():
        got += chunk
        if len(got) >= MAX_ANSWER_BYTES:
            break
        if time.monotonic() > deadline:
            return None
    return got[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace")


def send(client: httpx.Client, request: Request, *, now_unix: int) -> Outcome:
    """POST ``request`` once; any 2xx answer is delivered, anything else an error. The
    answer is read for at most the client's timeout in all, and its first KiB only."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_TYPE_HEADER: request.event_type,
        EVENT_ID_HEADER: request.event_id,
        DELIVERY_HEADER: str(request.delivery_id),
        SIGNATURE_HEADER: sign(request.secret, now_unix, request.body),
    }
    limit = client.timeout.read or 10.0
    deadline = time.monotonic() + limit
    try:
        with client.stream("POST", request.url, content=request.body, headers=headers) as answer:
            status = answer.status_code
            if 200 <= status < 300:
                return Outcome(True, status, None)
            if 300 <= status < 400:
                where = shown_url(answer.headers.get("location", "?"))
                return Outcome(False, status, f"HTTP {status}: redirect to {where} not followed")
            text = _answer(answer, deadline)
    except httpx.TimeoutException:
        return Outcome(False, None, f"timed out after {limit:g}s")
    except Exception as exc:  # a refused connection, a URL httpx cannot use, ...
        return Outcome(False, None, _one_line(f"{type(exc).__name__}: {exc}") or "request failed")
    if text is None:
        return Outcome(False, status, f"HTTP {status}: answer not read within {limit:g}s")
    return Outcome(False, status, _one_line(f"HTTP {status}: {text}"))
