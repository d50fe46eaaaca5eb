"""An expired trust document accepts no command, even when a newer one cannot be fetched
and the command claims a newer trust version (review finding: that path used to fall
back to the expired document without checking its expiry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.deployment.commands import check_fresh, verify_command
from agent.errors import CommandRefused, TransientDownloadError
from agent.trust_store import TrustStore
from model_store import load_private_key, load_public_key
from tests.support.blobserver import desired_state, sign_command
from tests.support.trust import TrustKit


def _unreachable(path: str) -> bytes:
    raise TransientDownloadError(f"{path}: HTTP 503 from the control plane")


@pytest.mark.parametrize("trust_version", [1, 99])
def test_expired_trust_refuses_commands_even_if_newer_trust_is_unreachable(
    tmp_path: Path, trust_kit: TrustKit, trust_version: int
) -> None:
    roots = [load_public_key(trust_kit.root_pub)]
    provisioned = TrustStore(
        label="d",
        data_dir=tmp_path,
        pinned_roots=roots,
        initial_file=trust_kit.trust_file,
        fetch=_unreachable,
    )
    provisioned.load_local()  # v1, valid when the device was provisioned
    later = datetime.now(UTC) + timedelta(days=400)  # v1 expires after 365 days
    store = TrustStore(
        label="d",
        data_dir=tmp_path,
        pinned_roots=roots,
        initial_file=None,
        fetch=_unreachable,
        clock=lambda: later,
    )
    store.load_local()
    command = sign_command(
        desired_state("d", 5, trust_version=trust_version, expires_in=timedelta(days=401)),
        [load_private_key(trust_kit.cp_key)],
    )
    with pytest.raises(CommandRefused, match="expired"):
        check_fresh(verify_command(command, trust=store, device_id="d", now=later), later)
