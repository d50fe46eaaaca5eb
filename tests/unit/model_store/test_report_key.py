"""Report keys: MAC-sealed reports, and the key's transport encrypted to the device key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle

import pytest

from model_store import generate_private_key
from model_store.errors import SignatureError
from model_store.report_key import KEY_ID_PREFIX, new_report_key
from model_store.report_key_wrap import unwrap_report_key, wrap_report_key
from model_store.report_seal import device_keys, open_report, seal_report

BODY = b'{"device_id":"d1","online":true}'


def test_a_wrapped_key_opens_only_with_the_device_key_it_was_made_for() -> None:
    device, other = generate_private_key(), generate_private_key()
    key = new_report_key()
    wrapped = wrap_report_key(key, device.public_key(), device_id="d1")
    assert key.secret.hex() not in wrapped and key.kid.startswith(KEY_ID_PREFIX)
    assert unwrap_report_key(wrapped, device, device_id="d1") == key
    assert key.secret.hex() not in repr(key)
    with pytest.raises(SignatureError, match="not made for this device key"):
        unwrap_report_key(wrapped, other, device_id="d1")
    with pytest.raises(SignatureError, match="not made for this device key"):
        unwrap_report_key(wrapped, device, device_id="d2")  # bound to the device id
    raw = bytearray(base64.b64decode(wrapped))
    raw[-1] ^= 1
    with pytest.raises(SignatureError, match="not made for this device key"):
        unwrap_report_key(base64.b64encode(raw).decode(), device, device_id="d1")
    for junk in ("", "not base64!", base64.b64encode(b"\x01" * 40).decode()):
        with pytest.raises(SignatureError):
            unwrap_report_key(junk, device, device_id="d1")
    bad_point = base64.b64encode(b"\x01" + b"\x04" + b"\x00" * 64 + b"\x00" * 60).decode()
    with pytest.raises(SignatureError, match="no valid P-256 point"):
        unwrap_report_key(bad_point, device, device_id="d1")


def test_a_maced_report_opens_only_with_its_key_and_unchanged() -> None:
    device = generate_private_key()
    key, other = new_report_key(), new_report_key()
    raw = seal_report(key, device_id="d1", stream="heartbeat", seq=3, body=BODY)
    report = open_report(raw, device_keys(device.public_key(), key))
    assert (report.device_id, report.seq, report.body["online"]) == ("d1", 3, True)
    assert report.key_id == device_keys(device.public_key()).kid  # attributed to the device
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        open_report(raw, device_keys(device.public_key(), other))
    envelope = json.loads(raw)
    payload = base64.b64decode(envelope["payload"]).replace(b'"seq":3', b'"seq":4')
    envelope["payload"] = base64.b64encode(payload).decode()
    with pytest.raises(SignatureError, match="does not verify"):
        open_report(json.dumps(envelope).encode(), device_keys(device.public_key(), key))


def test_a_report_key_survives_pickling_and_its_macs_are_hmac_sha256() -> None:
    key = new_report_key()
    again = pickle.loads(pickle.dumps(key))
    assert again == key and repr(again) == repr(key)
    message = b"x" * 3000  # past the size at which hashlib lets go of the GIL
    expected = hmac.new(key.secret, message, hashlib.sha256).digest()
    assert key.mac(message) == again.mac(message) == expected
    assert key.mac(b"short") == hmac.new(key.secret, b"short", hashlib.sha256).digest()
