"""Attacks on the root of trust: revoked release and control-plane keys, and root
rotations (a proper one is accepted and persisted; one signed only by the new root, or
one that skips a version, is refused). Each runs against a real agent of its own serving
det 1.0.0 (the trust it accepts outlives the test), and checks that nothing is installed
and the previous model keeps serving (``assert_untouched``).

What is shared (the serving agent, ``assert_untouched``) is in ``tests.support.attacks``."""

from __future__ import annotations

import json
import time
from base64 import b64decode
from pathlib import Path

import pytest

from agent import Agent
from agent.trust_store import TrustStore
from model_store import (
    SIGNATURE_FILENAME,
    TrustDocument,
    key_id,
    load_private_key,
    load_public_key,
    verify_signature_trusted,
    write_keypair,
)
from protocol import DeviceStatus
from tests.support.attacks import (
    SLOW_RETRY,
    Serving,
    assert_untouched,
    file_ref,
    make_bundle,
    serving_v1,
    wait_failed,
    wait_refused,
)
from tests.support.blobserver import desired_state, sign_command, trust_document
from tests.support.deploy import DEVICE, Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
REFUSED_TRUST = "refused trust document: "


def _persisted_versions(agent: Agent) -> list[int]:
    data = json.loads((agent.config.data_dir / "trust.json").read_text())
    return [json.loads(b64decode(link["envelope"]["payload"]))["version"] for link in data["chain"]]


def _trust_refused(s: Serving, before: int, expected: str) -> None:
    """One more trust document refused, for ``expected``, in one line of ``last_error``."""
    wait_until(
        lambda: s.agent.refused_trust_documents > before and expected in (s.agent.last_error or ""),
        10,
        f"trust document refused ({expected})",
    )
    error = s.agent.last_error
    assert error is not None and error.startswith(REFUSED_TRUST) and "\n" not in error, error


def _update(setup: Setup, version: int, *, roots: list[Path], signers: list[Path]) -> TrustDocument:
    kit = setup.kit
    return trust_document(
        version,
        roots=roots,
        releases=[kit.release_pub],
        control_planes=[kit.cp_pub],
        signers=signers,
    )


def test_attack_revoked_key(setup: Setup) -> None:
    """Release key R1 leaks and trust v2 revokes it: a bundle signed only by R1 (which v1
    would have accepted) is refused. det 1.0.0 is signed by R2, which stays certified."""
    kit, tmp = setup.kit, setup.tmp
    r2_key, r2_pub = write_keypair(tmp / "release2", "release")
    both = trust_document(
        1,
        roots=[kit.root_pub],
        releases=[kit.release_pub, r2_pub],
        control_planes=[kit.cp_pub],
        signers=[kit.root_key],
    )
    trust_file = tmp / "trust-two-releases.json"
    trust_file.write_bytes(both.raw())
    setup.blobs.serve_trust(both)
    with serving_v1(setup, key=r2_key, trust_file=trust_file) as s:
        leaked = make_bundle(setup, "2.0.0", key=kit.release_key)
        verify_signature_trusted((leaked / SIGNATURE_FILENAME).read_bytes(), both)  # v1: fine
        revoking = trust_document(
            2,
            roots=[kit.root_pub],
            releases=[r2_pub],
            control_planes=[kit.cp_pub],
            revoked=[key_id(load_public_key(kit.release_pub))],
            signers=[kit.root_key],
        )
        setup.blobs.serve_trust(revoking)
        a = s.assignment(leaked)
        # the command names trust v2: the agent fetches and verifies it first
        setup.watcher.desire(s.next_generation(), a, trust_version=2)
        reason = wait_failed(s, a)
        assert s.agent.trust_version == 2
        assert "signature rejected: signed by an untrusted key" in reason
        assert not s.fetched(file_ref(a, "model.onnx"))
        assert_untouched(s, a)


def test_attack_command_signed_by_revoked_key(setup: Setup) -> None:
    """The control-plane key leaks and trust v2 revokes it (certifying a new one): a
    command signed by the old key, naming trust v2, is refused."""
    kit = setup.kit
    _, cp2_pub = write_keypair(setup.tmp / "cp2", "control-plane")
    revoking = trust_document(
        2,
        roots=[kit.root_pub],
        releases=[kit.release_pub],
        control_planes=[cp2_pub],
        revoked=[key_id(load_public_key(kit.cp_pub))],
        signers=[kit.root_key],
    )
    setup.blobs.serve_trust(revoking)
    with serving_v1(setup) as s:
        a = s.assignment(make_bundle(setup, "2.0.0"))
        before, fetched = s.agent.refused_commands, len(setup.blobs.requests)
        setup.watcher.desire(s.next_generation(), a, trust_version=2)  # fetches v2 first
        wait_refused(s, before, "not signed by a certified control-plane key (trust version 2)")
        assert s.agent.trust_version == 2
        assert [p for p, _ in setup.blobs.requests[fetched:]] == ["/api/v1/trust/2"]
        assert_untouched(s, a)


def test_attack_root_rotation_properly_signed_is_accepted(setup: Setup) -> None:
    """A rotation to a new root, signed by the old and the new root: accepted, persisted,
    kept across a restart; from then on the old root alone signs nothing."""
    kit = setup.kit
    root2_key, root2_pub = write_keypair(setup.tmp / "root2", "root")
    rotation = _update(setup, 2, roots=[root2_pub], signers=[kit.root_key, root2_key])
    old_root_only = _update(setup, 3, roots=[kit.root_pub], signers=[kit.root_key])
    with serving_v1(setup) as s:
        setup.watcher.publish_trust(rotation)
        wait_until(lambda: s.agent.trust_version == 2, 10, "trust version 2")
        # persisted as a chain: v2 is not signed by the pinned root
        wait_until(lambda: _persisted_versions(s.agent) == [1, 2], 10, "v2 persisted")
        assert s.agent.refused_trust_documents == 0
        assert_untouched(s)
        setup.watcher.publish_trust(old_root_only)  # the retired root tries to take back over
        _trust_refused(s, 0, "not signed by a root key of version 2")
        assert s.agent.trust_version == 2 and _persisted_versions(s.agent) == [1, 2]
        assert_untouched(s)
    setup.blobs.trust.clear()  # the restart needs nothing from the network
    with setup.agent(retry_backoff_s=SLOW_RETRY) as again:
        s.agent = again
        assert again.trust_version == 2
        assert_untouched(s)


def test_attack_root_rotation_signed_only_by_new_root(setup: Setup) -> None:
    """An attacker holding the control plane and the broker rotates the root to its own
    (signing with that root only) and certifies its own release and control-plane keys:
    the document is refused, and so is the command and bundle it was meant to let in."""
    tmp = setup.tmp
    evil_root, evil_root_pub = write_keypair(tmp / "evil", "root")
    evil_release, evil_release_pub = write_keypair(tmp / "evil", "release")
    evil_cp, evil_cp_pub = write_keypair(tmp / "evil", "control-plane")
    forged = trust_document(
        2,
        roots=[evil_root_pub],
        releases=[evil_release_pub],
        control_planes=[evil_cp_pub],
        signers=[evil_root],
    )
    with serving_v1(setup) as s:
        setup.blobs.serve_trust(forged)
        setup.watcher.publish_trust(forged)
        _trust_refused(s, 0, "not signed by a root key of version 1")
        assert s.agent.trust_version == 1 and _persisted_versions(s.agent) == [1]
        assert_untouched(s)
        a = s.assignment(make_bundle(setup, "2.0.0", key=evil_release))
        command = sign_command(
            desired_state(DEVICE, s.next_generation(), a, trust_version=2),
            [load_private_key(evil_cp)],
        )
        before = s.agent.refused_commands
        setup.watcher.command(command)
        wait_refused(s, before, "not signed by a certified control-plane key (trust version 1)")
        assert s.agent.trust_version == 1
        assert not s.fetched(a.signature)
        assert_untouched(s, a)


def test_attack_root_rotation_version_skip(setup: Setup) -> None:
    """A properly dual-signed rotation numbered 3 while the agent holds version 1: refused
    when version 2 cannot be found, and when the server passes version 3 off as 2."""
    kit = setup.kit
    root2_key, root2_pub = write_keypair(setup.tmp / "root2", "root")
    skipping = _update(setup, 3, roots=[root2_pub], signers=[kit.root_key, root2_key])
    with serving_v1(setup) as s:
        setup.watcher.publish_trust(skipping)
        _trust_refused(s, 0, "trust version 2")
        assert "404" in (s.agent.last_error or "")
        setup.blobs.trust[2] = skipping.raw()
        setup.watcher.publish_trust(b"")  # (clear the retained one, to publish it again)
        setup.watcher.publish_trust(skipping)
        _trust_refused(s, 1, "trust update has version 3, expected 2")
        assert s.agent.trust_version == 1 and _persisted_versions(s.agent) == [1]
        assert_untouched(s)


def test_command_arriving_during_a_trust_update_is_not_lost(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust v2 (revoking the leaked release key) on the trust topic, then at once a
    command naming it: the command must be evaluated. The window between "v2 accepted"
    and the re-submission is widened to make the race deterministic."""
    offer = TrustStore.offer

    def slow_offer(self: TrustStore, raw: bytes) -> bool:
        changed = offer(self, raw)
        time.sleep(1.0)  # what a busy worker may take between accepting and re-submitting
        return changed

    monkeypatch.setattr(TrustStore, "offer", slow_offer)
    kit = setup.kit
    update = trust_document(
        2,
        roots=[kit.root_pub],
        releases=[kit.release_pub],
        control_planes=[kit.cp_pub],
        signers=[kit.root_key],
    )
    with serving_v1(setup) as s:
        setup.watcher.publish_trust(update)
        wait_until(lambda: s.agent.trust_version == 2, 10, "trust version 2")
        a = s.assignment(make_bundle(setup, "2.0.0"))
        setup.watcher.desire(s.next_generation(), a, trust_version=2)
        wait_until(lambda: s.agent.generation == 2, 30, "generation 2 applied")


def test_revoking_the_key_of_the_running_model_stops_it(setup: Setup) -> None:
    """det 1.0.0 is signed by release key R1; trust v2 revokes R1. The agent stops serving
    it at once (as a restart would: installed bundles are re-verified), and a command that
    names it again is refused with the reason."""
    kit = setup.kit
    with serving_v1(setup) as s:
        _, r2_pub = write_keypair(setup.tmp / "release2", "release")
        revoking = trust_document(
            2,
            roots=[kit.root_pub],
            releases=[r2_pub],
            control_planes=[kit.cp_pub],
            revoked=[key_id(load_public_key(kit.release_pub))],
            signers=[kit.root_key],
        )
        setup.blobs.serve_trust(revoking)
        setup.watcher.publish_trust(revoking)
        wait_until(lambda: s.agent.trust_version == 2, 10, "trust v2 accepted")
        wait_until(lambda: s.agent.active == [], 10, "the revoked model to stop serving")
        assert "no longer trusted" in (s.agent.last_error or "")
        assert s.agent.status != DeviceStatus.ACTIVE
        again = s.assignment(s.v1_dir)  # the same bundle, deployed again
        setup.watcher.desire(s.next_generation(), again, trust_version=2)
        reason = wait_failed(s, again)
        assert "untrusted key" in reason and s.agent.active == []
