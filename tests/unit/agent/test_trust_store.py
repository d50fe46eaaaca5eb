"""The agent's trust store with real keys and documents, and a dict as the control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import AgentConfigError, DownloadError, TrustStoreError
from agent.trust_store import TrustStore
from model_store import load_public_key
from tests.support.blobserver import trust_document
from tests.support.trust import TrustKit


def _store(kit: TrustKit, data: Path, served: dict[int, bytes], file: Path | None) -> TrustStore:
    def fetch(path: str) -> bytes:
        version = int(path.rsplit("/", 1)[1])
        if version not in served:
            raise DownloadError(f"{path}: HTTP 404 from control plane")
        return served[version]

    return TrustStore(
        label="t",
        data_dir=data,
        pinned_roots=[load_public_key(kit.root_pub)],
        initial_file=file,
        fetch=fetch,
    )


def test_provisioned_then_persisted_then_updated(trust_kit: TrustKit, tmp_path: Path) -> None:
    served = {2: trust_kit.document(2), 3: trust_kit.document(3)}
    store = _store(trust_kit, tmp_path, served, trust_kit.trust_file)
    store.load_local()
    assert store.version == 1
    assert store.catch_up(3).version == 3
    again = _store(trust_kit, tmp_path, {}, None)  # no file, no network: the persisted chain
    again.load_local()
    assert again.version == 3


def test_skipping_and_missing_versions_are_refused(trust_kit: TrustKit, tmp_path: Path) -> None:
    served = {2: trust_kit.document(3)}  # the server passes version 3 off as version 2
    store = _store(trust_kit, tmp_path, served, trust_kit.trust_file)
    store.load_local()
    with pytest.raises(TrustStoreError, match="version 3, expected 2"):
        store.offer(trust_kit.document(3))
    served.clear()
    with pytest.raises(TrustStoreError, match="HTTP 404"):
        store.catch_up(5)
    assert store.version == 1 and store.refused == 2


def test_tampered_persisted_chain_is_ignored(trust_kit: TrustKit, tmp_path: Path) -> None:
    store = _store(trust_kit, tmp_path, {2: trust_kit.document(2)}, trust_kit.trust_file)
    store.load_local()
    store.catch_up(2)
    path = tmp_path / "trust.json"
    data = json.loads(path.read_text())
    envelope = data["chain"][0]["envelope"]
    envelope["signatures"] = [_sig_of(trust_kit.document(1))]  # v1's signature on v2's payload
    path.write_text(json.dumps(data))
    fresh = _store(trust_kit, tmp_path, {}, trust_kit.trust_file)
    fresh.load_local()
    assert fresh.version == 1  # fell back to the provisioning file


def _sig_of(raw: bytes) -> dict[str, str]:
    signature: dict[str, str] = json.loads(raw)["signatures"][0]
    return signature


def test_bad_provisioning_file_is_a_config_error(trust_kit: TrustKit, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_bytes(b'{"payloadType": "x", "payload": "e30=", "signatures": []}')
    with pytest.raises(AgentConfigError, match=r"^trust: .*bogus\.json: "):
        _store(trust_kit, tmp_path / "d", {}, bogus).load_local()
    with pytest.raises(AgentConfigError, match=r"missing\.json: No such file"):
        _store(trust_kit, tmp_path / "d", {}, tmp_path / "missing.json").load_local()


def test_a_version_claimed_far_ahead_is_refused_without_fetching(
    trust_kit: TrustKit, tmp_path: Path
) -> None:
    served: dict[int, bytes] = {}
    store = _store(trust_kit, tmp_path / "data", served, trust_kit.trust_file)
    store.load_local()
    far = trust_document(
        5000,
        roots=[trust_kit.root_pub],
        releases=[trust_kit.release_pub],
        control_planes=[trust_kit.cp_pub],
        signers=[trust_kit.root_key],
    )
    with pytest.raises(TrustStoreError, match="versions ahead"):
        store.offer(far.raw())
    assert store.version == 1
