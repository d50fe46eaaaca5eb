"""Sealed device reports and the replay window (model_store.report_seal)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from model_store import generate_private_key
from model_store.errors import SignatureError
from model_store.report_seal import ReplayWindow, device_keys, open_report, seal_report

BODY = b'{"device_id":"d1","online":true}'


def test_seal_and_open() -> None:
    key = generate_private_key()
    at = datetime(2026, 12, 5, 10, 0, 0, 123000, tzinfo=UTC)
    raw = seal_report(key, device_id="d1", stream="availability", seq=7, body=BODY, sent_at=at)
    report = open_report(raw, device_keys(key.public_key()))
    assert (report.device_id, report.stream, report.seq, report.sent_at) == (
        "d1",
        "availability",
        7,
        at,
    )
    assert report.body == {"device_id": "d1", "online": True}


def test_another_key_or_a_changed_byte_is_refused() -> None:
    key, other = generate_private_key(), generate_private_key()
    raw = seal_report(key, device_id="d1", stream="heartbeat", seq=1, body=BODY)
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        open_report(raw, device_keys(other.public_key()))
    envelope = json.loads(raw)
    payload = base64.b64decode(envelope["payload"]).replace(b'"seq":1', b'"seq":9')
    envelope["payload"] = base64.b64encode(payload).decode()
    with pytest.raises(SignatureError, match="does not verify"):
        open_report(json.dumps(envelope).encode(), device_keys(key.public_key()))


def test_malformed_payloads_are_one_line_errors() -> None:
    key = generate_private_key()
    with pytest.raises(SignatureError):
        open_report(b"{not json", device_keys(key.public_key()))
    from model_store import dsse
    from model_store.report_seal import REPORT_PAYLOAD_TYPE

    for payload in (b"[]", b'{"body":{},"device":"d1","seq":0,"sent_at":"x","stream":"state"}'):
        raw = dsse.encode_envelope(dsse.sign_envelope(payload, REPORT_PAYLOAD_TYPE, [key]))
        with pytest.raises(SignatureError, match="sealed report"):
            open_report(raw, device_keys(key.public_key()))
    with pytest.raises(ValueError):
        seal_report(key, device_id="d1", stream="desired", seq=1, body=BODY)


def test_replay_window_accepts_each_number_once_and_reordering_within_it() -> None:
    w = ReplayWindow()
    for seq in (1, 2, 5, 3):
        nxt = w.accept(seq)
        assert nxt is not None, seq
        w = nxt
    assert all(w.accept(seq) is None for seq in (1, 2, 3, 5))
    w4 = w.accept(4)
    assert w4 is not None and w4.accept(4) is None
    far = w4.accept(5 + ReplayWindow.WIDTH + 10)
    assert far is not None
    assert far.accept(5) is None  # slid out of the window: refused as too old
    assert far.accept(far.top - 1) is not None
