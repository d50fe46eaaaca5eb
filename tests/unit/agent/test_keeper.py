"""The keeper (``agent.keeper``): the same operations in a child process as in this one,
errors that keep their class and text across the pipe, a child that goes away when idle,
and one that dies mid-operation."""

from __future__ import annotations

import os
import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.errors import (
    AgentConfigError,
    CommandRefused,
    KeeperUnavailable,
    TrustFetchError,
    TrustStoreError,
)
from agent.keeper.api import KeeperSettings
from agent.keeper.child import ChildKeeper
from agent.keeper.local import LocalKeeper
from agent.keeper.wire import error_name, error_of, manifest_of, manifest_to_json
from model_store import build_bundle, load_private_key, sign_bundle
from model_store.errors import ModelStoreError, SignatureError
from model_store.statement import ManifestEntry, SignedManifest
from tests.support.blobserver import desired_state, sign_command
from tests.support.onnx_models import two_input_model
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

#: nothing listens here: a keeper that tried to fetch would fail, not hang
NOWHERE = "http://127.0.0.1:9"


def _settings(
    kit: TrustKit, data: Path, trust: Path | None = None, *, url: str = NOWHERE
) -> KeeperSettings:
    return KeeperSettings(
        device_id="d1",
        data_dir=data,
        root_keys=(kit.root_pub,),
        trust=trust if trust is not None else kit.trust_file,
        control_plane_url=url,
        download_timeout_s=5.0,
        download_stall_timeout_s=5.0,
    )


def _bundle(tmp: Path, key: Path) -> Path:
    src = two_input_model(tmp / "src" / "model.onnx")
    out = tmp / "bundle"
    build_bundle(src, out, name="det", version="1.0.0")
    sign_bundle(out, load_private_key(key))
    return out


@pytest.fixture
def child(trust_kit: TrustKit, tmp_path: Path):  # type: ignore[no-untyped-def]
    keeper = ChildKeeper(_settings(trust_kit, tmp_path / "child"), idle_s=30.0)
    yield keeper
    keeper.close()


def test_the_child_answers_as_the_local_keeper_does(
    child: ChildKeeper, trust_kit: TrustKit, tmp_path: Path
) -> None:
    local = LocalKeeper(_settings(trust_kit, tmp_path / "local"))
    try:
        for keeper in (local, child):
            keeper.open_trust()
            assert keeper.trust_version == 1 and keeper.ensure_trust() == 1
        now = datetime.now(UTC)
        good = sign_command(desired_state("d1", 7), [load_private_key(trust_kit.cp_key)])
        by_local = local.verify_command(good, device_id="d1", now=now)
        by_child = child.verify_command(good, device_id="d1", now=now)
        assert by_child == by_local and by_child.generation == 7
        forged = sign_command(desired_state("d1", 8), [load_private_key(trust_kit.release_key)])
        texts = []
        for keeper in (local, child):
            with pytest.raises(CommandRefused) as refused:
                keeper.verify_command(forged, device_id="d1", now=now)
            texts.append(str(refused.value))
        assert texts[0] == texts[1] and "not signed by a certified control-plane key" in texts[0]

        bundle = _bundle(tmp_path, trust_kit.release_key)
        signature = (bundle / "model.sig").read_bytes()
        assert child.verify_bundle(bundle) == local.verify_bundle(bundle)
        assert child.verify_signature(signature, fresh=True) == local.verify_bundle(bundle)
        (bundle / "model.onnx").write_bytes(b"tampered")
        with pytest.raises(ModelStoreError) as by_child_error:
            child.verify_bundle(bundle)
        with pytest.raises(ModelStoreError) as by_local_error:
            local.verify_bundle(bundle)
        assert str(by_child_error.value) == str(by_local_error.value)

        assert child.load_identity() is None and local.load_identity() is None
        assert child.started == 1  # every operation above went to one child
    finally:
        local.close()


def test_a_fresh_child_checks_bundles_first_thing(trust_kit: TrustKit, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, trust_kit.release_key)
    keeper = ChildKeeper(_settings(trust_kit, tmp_path / "d"), idle_s=30.0)
    try:
        keeper.open_trust()
        keeper.close_child()  # as after IDLE_S without an operation
        # the first operation of the next child: no trust operation came before it
        manifest = keeper.verify_bundle(bundle)
        assert manifest.files and keeper.trust_version == 1
        keeper.close_child()
        signature = (bundle / "model.sig").read_bytes()
        assert keeper.verify_signature(signature, fresh=True) == manifest
        keeper.close_child()
        assert keeper.load_identity() is None and keeper.trust_version == 1
        assert keeper.started == 4
    finally:
        keeper.close()


def test_a_child_never_goes_back_to_an_older_trust(trust_kit: TrustKit, tmp_path: Path) -> None:
    keeper = ChildKeeper(_settings(trust_kit, tmp_path / "d"), idle_s=30.0)
    try:
        keeper.open_trust()
        saved = (tmp_path / "d" / "trust.json").read_bytes()  # the chain at version 1
        v2 = trust_kit.document(2)
        assert keeper.offer_trust(v2) and keeper.trust_version == 2
        # version 2 did not reach the disk (a failed save, or trust.json put back)
        (tmp_path / "d" / "trust.json").write_bytes(saved)
        keeper.close_child()
        command = sign_command(desired_state("d1", 3), [load_private_key(trust_kit.cp_key)])
        with pytest.raises(TrustFetchError, match="older than version 2"):
            keeper.verify_command(command, device_id="d1", now=datetime.now(UTC))
        assert keeper.trust_version == 2
    finally:
        keeper.close()


def test_a_closed_keeper_starts_no_other_child(child: ChildKeeper) -> None:
    child.open_trust()
    child.close()
    with pytest.raises(KeeperUnavailable, match="closed"):
        child.ensure_trust()
    assert not child.running and child.started == 1


def test_refused_trust_documents_count_across_children(child: ChildKeeper) -> None:
    with pytest.raises(TrustStoreError, match="malformed trust document"):
        child.offer_trust(b"not a trust document")
    assert child.refused_trust == 1
    child.close_child()  # the next operation starts another child: the count carries over
    with pytest.raises(TrustStoreError, match="malformed trust document"):
        child.offer_trust(b"{}")
    assert child.refused_trust == 2 and child.started == 2


def test_a_bad_configuration_is_the_same_one_line_error(
    trust_kit: TrustKit, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.json"
    keeper = ChildKeeper(_settings(trust_kit, tmp_path / "d", trust=missing))
    try:
        with pytest.raises(AgentConfigError, match=r"^trust: .*nowhere\.json"):
            keeper.open_trust()
    finally:
        keeper.close()


def test_an_idle_child_goes_away_and_comes_back_when_needed(
    trust_kit: TrustKit, tmp_path: Path
) -> None:
    keeper = ChildKeeper(_settings(trust_kit, tmp_path / "d"), idle_s=0.3)
    try:
        keeper.open_trust()
        assert keeper.running
        wait_until(lambda: not keeper.running, 10, "the idle close")
        assert not keeper.running  # at rest, the agent holds no keeper
        assert keeper.ensure_trust() == 1 and keeper.started == 2
    finally:
        keeper.close()
    assert not keeper.running


def test_a_warmed_child_serves_the_first_operation_or_goes_away_unused(
    trust_kit: TrustKit, tmp_path: Path
) -> None:
    keeper = ChildKeeper(_settings(trust_kit, tmp_path / "d"), idle_s=30.0)
    try:
        keeper.warm()
        assert keeper.running and keeper.started == 1  # no operation asked for it
        keeper.warm()  # a second warm keeps the same child
        assert keeper.ensure_trust() == 1 and keeper.started == 1  # the warmed child answered
        keeper.idle_s = 0.5  # from the next timer on: the idle close, without waiting 30 s
        keeper.warm()
        wait_until(lambda: not keeper.running, 10, "the idle close")
        assert not keeper.running  # warmed, then idle: closed as any idle child
        keeper.warm()
        assert keeper.running and keeper.started == 2
        wait_until(lambda: not keeper.running, 10, "the idle close")
        assert not keeper.running  # never used: closed all the same
    finally:
        keeper.close()
    keeper.warm()  # closed: starts nothing
    assert not keeper.running and keeper.started == 2


def test_a_child_that_died_while_idle_is_replaced(child: ChildKeeper) -> None:
    child.open_trust()
    proc = child._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert child.ensure_trust() == 1 and child.started == 2


def test_a_child_that_dies_mid_operation_is_unavailable_then_replaced(
    trust_kit: TrustKit, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        keeper = ChildKeeper(_settings(trust_kit, tmp_path / "d", url=url))
        try:
            keeper.open_trust()
            proc = keeper._proc
            assert proc is not None
            killer = threading.Timer(0.5, os.kill, (proc.pid, signal.SIGKILL))
            killer.start()
            v3 = trust_kit.document(3)
            with pytest.raises(KeeperUnavailable, match="keeper process exited during"):
                keeper.offer_trust(v3)  # ...which fetches v2 from the silent control plane
            killer.join()
            assert keeper.ensure_trust() == 1 and keeper.started == 2
        finally:
            keeper.close()


def test_errors_keep_their_class_and_only_their_first_line() -> None:
    assert error_name(SignatureError("bad")) == "ModelStoreError"  # what callers catch
    assert error_name(KeeperUnavailable("x")) == "TrustFetchError"
    assert error_name(RuntimeError("bug")) == "AgentError"
    assert isinstance(error_of("CommandRefused", "no"), CommandRefused)
    assert type(error_of("SomethingElse", "no")).__name__ == "AgentError"
    manifest = SignedManifest("s", "a" * 64, (ManifestEntry("m.onnx", "b" * 64),), "k")
    assert manifest_of(manifest_to_json(manifest)) == manifest
