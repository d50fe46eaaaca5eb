"""The agent's identity on disk, its report sealer and its renewal schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.identity.files import REPORT_KEY_FILE, IdentityFiles
from agent.identity.renewal import BACKDATE, renewal_due
from agent.identity.sealer import BLOCK, ReportSealer, signer_with
from model_store import generate_private_key
from model_store.device_certs import BACKDATE as ISSUED_BACKDATE
from model_store.device_certs import issue_device_certificate, to_pem
from model_store.errors import SignatureError
from model_store.report_key import new_report_key
from model_store.report_seal import device_keys, open_report


def _enrolled(tmp_path: Path, lifetime: timedelta) -> IdentityFiles:
    files = IdentityFiles(tmp_path / "identity")
    key = files.new_key()
    ca = generate_private_key()
    cert = issue_device_certificate(ca, "d1", key.public_key(), lifetime=lifetime)
    files.commit(to_pem(cert), b"ca", new_key=True)
    return files


def test_the_key_is_private_and_the_identity_loads_back(tmp_path: Path) -> None:
    assert IdentityFiles(tmp_path / "identity").load() is None
    files = _enrolled(tmp_path, timedelta(days=7))
    identity = files.load()
    assert identity is not None
    assert identity.key_path.stat().st_mode & 0o777 == 0o600
    assert (identity.not_after - identity.not_before) > timedelta(days=7)  # back-dated start


def test_renewal_is_due_at_half_the_issued_lifetime(tmp_path: Path) -> None:
    identity = _enrolled(tmp_path, timedelta(seconds=60)).load()
    assert identity is not None
    due = renewal_due(identity)
    assert identity.not_after - due == timedelta(seconds=30)
    assert due > datetime.now(UTC) + timedelta(seconds=20)


def test_the_renewal_schedule_knows_the_backdating_the_issuer_applies() -> None:
    # agent.identity.renewal keeps its own copy: model_store.device_certs imports cryptography
    assert BACKDATE == ISSUED_BACKDATE


def test_sequence_numbers_keep_growing_across_restarts(tmp_path: Path) -> None:
    identity = _enrolled(tmp_path, timedelta(days=1)).load()
    assert identity is not None
    keys = device_keys(identity.private_key().public_key())
    first = ReportSealer(identity, "d1", tmp_path, signer_with(identity, "d1"))
    seqs = [open_report(first.seal("heartbeat", b"{}"), keys).seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    # a restart (even after kill -9: nothing more was written) starts above the reserved block
    again = ReportSealer(identity, "d1", tmp_path, signer_with(identity, "d1"))
    nxt = open_report(again.seal("state", b"{}"), keys)
    assert nxt.seq == BLOCK + 1 and nxt.stream == "state" and nxt.device_id == "d1"


def test_a_report_key_is_stored_privately_and_seals_from_then_on(tmp_path: Path) -> None:
    files = _enrolled(tmp_path, timedelta(days=1))
    identity = files.load()
    assert identity is not None and identity.report_key is None
    sealer = ReportSealer(identity, "d1", tmp_path, signer_with(identity, "d1"))
    signed = device_keys(identity.private_key().public_key())
    assert open_report(sealer.seal("heartbeat", b"{}"), signed).seq == 1
    # a renewal brings a report key: stored 0600, and reports are MACed with it
    mac = new_report_key()
    renewed = files.commit(identity.certificate_pem, b"ca", new_key=False, mac=mac)
    assert renewed.report_key == mac
    assert (files.directory / REPORT_KEY_FILE).stat().st_mode & 0o777 == 0o600
    sealer.use(renewed)
    sealed = sealer.seal("heartbeat", b"{}")
    assert json.loads(sealed)["signatures"][0]["keyid"] == mac.kid
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        open_report(sealed, signed)  # the signing key alone no longer opens it
    assert open_report(sealed, device_keys(identity.private_key().public_key(), mac)).seq == 2
    # a renewal without one keeps it; a new key pair drops it (it was bound to the old key)
    assert files.commit(identity.certificate_pem, b"ca", new_key=False).report_key == mac
    files.new_key()
    assert files.commit(identity.certificate_pem, b"ca", new_key=True).report_key is None
