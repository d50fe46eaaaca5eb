"""The agent's identity on disk, its report sealer and its renewal schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.identity.files import IdentityFiles
from agent.identity.renewal import renewal_due
from agent.identity.sealer import BLOCK, ReportSealer
from model_store import generate_private_key
from model_store.device_certs import issue_device_certificate, to_pem
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


def test_sequence_numbers_keep_growing_across_restarts(tmp_path: Path) -> None:
    key = generate_private_key()
    keys = device_keys(key.public_key())
    first = ReportSealer(key, "d1", tmp_path)
    seqs = [open_report(first.seal("heartbeat", b"{}"), *keys).seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    # a restart (even after kill -9: nothing more was written) starts above the reserved block
    again = ReportSealer(key, "d1", tmp_path)
    nxt = open_report(again.seal("state", b"{}"), *keys)
    assert nxt.seq == BLOCK + 1 and nxt.stream == "state" and nxt.device_id == "d1"
