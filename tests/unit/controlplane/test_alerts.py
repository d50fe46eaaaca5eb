"""Alert signatures, payload envelopes and the retry policy (pure code)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from controlplane.alerts.events import SUBSCRIBABLE, EventType, envelope
from controlplane.alerts.sender import RetryPolicy
from controlplane.alerts.signing import new_secret, sign, verify

BODY = b'{"id":"evt_1","type":"ping"}'


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body() -> None:
    header = sign("s3cret-s3cret-s3cret", 1_700_000_000, BODY)
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body", "now", "ok"),
    [
        ("k" * 20, BODY, 1_700_000_000, True),
        ("k" * 20, BODY, 1_700_000_299, True),
        ("k" * 20, BODY, 1_700_000_301, False),  # too old: a replay
        ("x" * 20, BODY, 1_700_000_000, False),  # another secret
        ("k" * 20, BODY + b" ", 1_700_000_000, False),  # another body
    ],
)
def test_verify(secret: str, body: bytes, now: int, ok: bool) -> None:
    header = sign("k" * 20, 1_700_000_000, BODY)
    assert verify(secret, header, body, now=now) is ok


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1700000000"])
def test_verify_refuses_malformed_headers(header: str) -> None:
    assert verify("k" * 20, header, BODY, now=1_700_000_000) is False


def test_new_secrets_are_long_and_distinct() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 40


def test_the_envelope_is_the_same_bytes_at_every_attempt() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = envelope(event_id="evt_1", type_="rollout.paused", at=at, data={"b": 1, "a": 2})
    again = envelope(event_id="evt_1", type_="rollout.paused", at=at, data={"a": 2, "b": 1})
    assert first == again
    assert json.loads(first) == {
        "id": "evt_1",
        "type": "rollout.paused",
        "created_at": "2026-01-02T03:04:05Z",
        "data": {"a": 2, "b": 1},
    }


def test_ping_is_not_subscribable() -> None:
    assert EventType.PING.value not in SUBSCRIBABLE and len(SUBSCRIBABLE) == 6


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(backoff_s=30, cap_s=300, max_attempts=10)
    assert [policy.delay_s(n) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


@pytest.mark.parametrize(
    "header",
    ["t=²,v1=00", "t=1,v1=é", "t=99999999999999,v1=00", "t=,v1=", "v1=00"],
)
def test_verify_refuses_odd_headers_without_raising(header: str) -> None:
    assert verify("s" * 32, header, b"{}", now=1.0) is False
