"""Report acknowledgements (model_store.report_ack): MACed with the device's report key,
for that device only; nobody without the key can make a device forget its spool."""

from __future__ import annotations

import base64
import json

import pytest

from model_store.errors import SignatureError
from model_store.report_ack import MAX_RANGES, open_ack, seal_ack, to_ranges
from model_store.report_key import new_report_key
from model_store.report_seal import seal_report


def test_ranges_merge_and_sort() -> None:
    assert to_ranges([5, 1, 2, 3, 9, 3, 10]) == [(1, 3), (5, 5), (9, 10)]
    assert to_ranges([]) == []


def test_seal_and_open() -> None:
    key = new_report_key()
    raw = seal_ack(key, device_id="d1", stored=[(1, 3), (7, 7)], lost=[(5, 5)])
    ack = open_ack(raw, key, device_id="d1")
    assert list(ack.seqs(ack.stored)) == [1, 2, 3, 7]
    assert list(ack.seqs(ack.lost)) == [5]


def test_another_key_another_device_or_a_changed_byte_is_refused() -> None:
    key = new_report_key()
    raw = seal_ack(key, device_id="d1", stored=[(1, 3)])
    with pytest.raises(SignatureError, match="report key"):
        open_ack(raw, new_report_key(), device_id="d1")
    with pytest.raises(SignatureError, match="for device 'd1'"):
        open_ack(raw, key, device_id="d2")
    envelope = json.loads(raw)
    payload = base64.b64decode(envelope["payload"]).replace(b"[1,3]", b"[1,999]")
    envelope["payload"] = base64.b64encode(payload).decode()
    with pytest.raises(SignatureError, match="report key"):
        open_ack(json.dumps(envelope).encode(), key, device_id="d1")


def test_a_report_is_not_an_ack() -> None:
    """Same key, other payload type: a device's own report cannot pass for an ack."""
    key = new_report_key()
    report = seal_report(key, device_id="d1", stream="heartbeat", seq=1, body=b"{}")
    with pytest.raises(SignatureError, match="not a report acknowledgement"):
        open_ack(report, key, device_id="d1")


def test_bounds() -> None:
    key = new_report_key()
    with pytest.raises(ValueError):
        seal_ack(key, device_id="d1", stored=[(i, i) for i in range(1, MAX_RANGES + 2)])
