"""The agent's trust document: updates from the trust topic (and fetched on demand), root
rotation, forged / skipping documents, revocation, persistence across restarts.

Real Mosquitto, a real HTTP server serving ``/api/v1/trust/{v}`` and blobs, real keys."""

from __future__ import annotations

import json
import time
from base64 import b64decode
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from agent import Agent
from model_store import key_id, load_private_key, load_public_key, sign_envelope, write_keypair
from protocol import TRUST_PAYLOAD_TYPE, DeviceStatus, EventKind, encode
from tests.support.blobserver import trust_document
from tests.support.deploy import Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
X: dict[str, np.ndarray] = {
    "x": np.ones((1, 4), dtype=np.float32),
    "ids": np.array([3], dtype=np.int64),
}


def _persisted_versions(agent: Agent) -> list[int]:
    data = json.loads((agent.config.data_dir / "trust.json").read_text())
    return [json.loads(b64decode(link["envelope"]["payload"]))["version"] for link in data["chain"]]


def _wait_refused(agent: Agent, count: int, reason: str) -> None:
    """Wait until ``count`` trust documents were refused, the last one for ``reason``."""
    wait_until(
        lambda: agent.refused_trust_documents == count and reason in (agent.last_error or ""),
        10,
        f"trust document {count} refused ({reason})",
    )


def test_trust_update_from_the_topic_rotates_the_control_plane_key(setup: Setup) -> None:
    kit = setup.kit
    cp2_key, cp2_pub = write_keypair(setup.tmp / "cp2", "control-plane")
    v2 = trust_document(
        2,
        roots=[kit.root_pub],
        releases=[kit.release_pub],
        control_planes=[cp2_pub],
        revoked=[key_id(load_public_key(kit.cp_pub))],
        signers=[kit.root_key],
    )
    a1 = setup.assignment(setup.bundle("det", "1.0.0"))
    with setup.agent() as agent:
        assert agent.trust_version == 1 and agent.wait_connected(10)
        setup.watcher.publish_trust(v2)
        wait_until(lambda: agent.trust_version == 2, 10, "trust version 2")
        assert _persisted_versions(agent) == [2]  # signed by the pinned root: chain restarts
        # the revoked control-plane key is refused now; the new one is accepted
        setup.watcher.desire(1, a1)
        wait_until(
            lambda: agent.refused_commands == 1 and "control-plane key" in (agent.last_error or ""),
            10,
            "old cp key refused",
        )
        setup.watcher.signers = [load_private_key(cp2_key)]
        setup.watcher.desire(2, a1, trust_version=2)
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
    with setup.agent() as again:  # the accepted trust survives a restart
        assert again.trust_version == 2


def test_command_naming_a_newer_trust_version_fetches_the_chain(setup: Setup) -> None:
    kit = setup.kit
    cp2_key, cp2_pub = write_keypair(setup.tmp / "cp2", "control-plane")
    v2 = trust_document(
        2,
        roots=[kit.root_pub],
        releases=[kit.release_pub],
        control_planes=[kit.cp_pub],
        signers=[kit.root_key],
    )
    v3 = trust_document(
        3,
        roots=[kit.root_pub],
        releases=[kit.release_pub],
        control_planes=[cp2_pub],
        signers=[kit.root_key],
    )
    setup.blobs.serve_trust(v2, v3)
    setup.watcher.signers = [load_private_key(cp2_key)]
    setup.watcher.desire(1, setup.assignment(setup.bundle("det", "1.0.0")), trust_version=3)
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        assert agent.trust_version == 3 and agent.refused_commands == 0
        trust_paths = [p for p, _ in setup.blobs.requests if p.startswith("/api/v1/trust")]
        assert trust_paths == ["/api/v1/trust/2", "/api/v1/trust/3"]


def test_skipping_and_forged_trust_documents_are_refused(setup: Setup) -> None:
    kit = setup.kit
    evil_key, evil_pub = write_keypair(setup.tmp / "evil", "root")
    rel, cps = [kit.release_pub], [kit.cp_pub]
    v3 = trust_document(
        3, roots=[kit.root_pub], releases=rel, control_planes=cps, signers=[kit.root_key]
    )
    # a rotation to the attacker's root, signed only by the attacker's (new) root
    forged = trust_document(
        2, roots=[evil_pub], releases=rel, control_planes=cps, signers=[evil_key]
    )
    # the old root signs, but the new root it names does not (rotations need both)
    payload = b64decode(forged.envelope.payload)
    half = encode(sign_envelope(payload, TRUST_PAYLOAD_TYPE, [load_private_key(kit.root_key)]))
    with setup.agent() as agent:
        assert agent.wait_connected(10)
        setup.watcher.publish_trust(v3)  # version 2 is nowhere to be found
        _wait_refused(agent, 1, "404")
        assert agent.last_error is not None
        assert agent.last_error.startswith("refused trust document: ")
        assert "trust version 2" in agent.last_error
        setup.blobs.trust[2] = v3.raw()  # the server passes v3 off as version 2
        setup.watcher.publish_trust(v3)
        _wait_refused(agent, 2, "version 3, expected 2")
        del setup.blobs.trust[2]
        setup.watcher.publish_trust(forged)
        _wait_refused(agent, 3, "not signed by a root key of version 1")
        setup.watcher.publish_trust(half)
        _wait_refused(agent, 4, "not signed by its own root key")
        assert agent.trust_version == 1 and _persisted_versions(agent) == [1]
    with setup.agent() as again:
        assert again.trust_version == 1


def test_root_rotation_signed_by_both_roots_is_accepted_and_replayed_on_restart(
    setup: Setup,
) -> None:
    kit = setup.kit
    root2_key, root2_pub = write_keypair(setup.tmp / "root2", "root")
    rel, cps = [kit.release_pub], [kit.cp_pub]
    v2 = trust_document(
        2, roots=[root2_pub], releases=rel, control_planes=cps, signers=[kit.root_key, root2_key]
    )
    v3 = trust_document(3, roots=[root2_pub], releases=rel, control_planes=cps, signers=[root2_key])
    setup.blobs.serve_trust(v2, v3)
    with setup.agent() as agent:
        assert agent.wait_connected(10)
        setup.watcher.publish_trust(v3)  # fetches v2, then uses the message for v3
        wait_until(lambda: agent.trust_version == 3, 10, "trust version 3")
        assert _persisted_versions(agent) == [1, 2, 3]  # v3 is not signed by the pinned root
        assert agent.refused_trust_documents == 0
    setup.blobs.trust.clear()  # the restart must not need the network
    with setup.agent() as again:
        assert again.trust_version == 3


def test_revoked_release_key_bundle_is_refused_and_the_previous_model_serves(
    setup: Setup,
) -> None:
    kit = setup.kit
    rel2_key, rel2_pub = write_keypair(setup.tmp / "release2", "release")
    v2 = trust_document(
        2,
        roots=[kit.root_pub],
        releases=[rel2_pub],
        control_planes=[kit.cp_pub],
        revoked=[key_id(load_public_key(kit.release_pub))],
        signers=[kit.root_key],
    )
    setup.blobs.serve_trust(v2)
    a1 = setup.assignment(setup.bundle("det", "1.0.0", key=rel2_key))
    setup.watcher.desire(1, a1, trust_version=2)
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        # a bundle signed by the revoked release key only
        a2 = setup.assignment(setup.bundle("det", "2.0.0", weight=3.0), deployment_id=2)
        setup.watcher.desire(2, a2, trust_version=2)
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("2.0.0"), 20, "FAILED")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED][-1]
        assert failed.reason is not None and "signature rejected" in failed.reason
        model_ref = next(f for f in a2.files if f.path == "model.onnx")
        assert not any(model_ref.sha256 in p for p, _ in setup.blobs.requests)
        assert [m.version for m in agent.active] == ["1.0.0"]
        assert agent.status == DeviceStatus.ACTIVE
        assert agent.infer("det", X)["y"].shape == (1, 3)
        time.sleep(0.2)
        assert not (agent.config.data_dir / "models" / a2.bundle_digest).exists()


def test_unprovisioned_agent_fetches_version_1_from_the_control_plane(setup: Setup) -> None:
    setup.watcher.desire(1, setup.assignment(setup.bundle("det", "1.0.0")))
    with setup.agent(provisioned=False) as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        assert agent.trust_version == 1
        assert ("/api/v1/trust/1", None) in setup.blobs.requests
    setup.blobs.trust.clear()
    with setup.agent(provisioned=False) as again:  # persisted: no fetch needed
        assert again.trust_version == 1 and [m.version for m in again.active] == ["1.0.0"]


def test_expired_trust_refuses_commands_until_a_newer_one_arrives(setup: Setup) -> None:
    kit = setup.kit
    rel, cps = [kit.release_pub], [kit.cp_pub]
    short = trust_document(
        1,
        roots=[kit.root_pub],
        releases=rel,
        control_planes=cps,
        signers=[kit.root_key],
        expires_in=timedelta(seconds=4),
    )
    short_file = setup.tmp / "short-trust.json"
    short_file.write_bytes(short.raw())
    with setup.agent(trust_file=short_file) as agent:
        assert agent.trust_version == 1 and agent.wait_connected(10)
        # the provisioned document expires (and the server has nothing newer)
        time.sleep(max(0.0, (short.expires - datetime.now(UTC)).total_seconds()) + 0.2)
        setup.watcher.desire(1, setup.assignment(setup.bundle("det", "1.0.0")))
        wait_until(
            lambda: "trust document expired" in (agent.last_error or ""), 10, "trust expired"
        )
        # counted just after last_error is reported: wait for it, do not race it
        wait_until(lambda: agent.refused_commands == 1, 20, "refusal counted")
        assert agent.active == []
        v2 = trust_document(
            2, roots=[kit.root_pub], releases=rel, control_planes=cps, signers=[kit.root_key]
        )
        setup.watcher.publish_trust(v2)  # the refused command is evaluated again
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        # ACTIVATED is published from inside the installer, before the generation's outcome
        # is saved and last_error cleared: wait for the outcome, don't race it.
        wait_until(lambda: agent.last_error is None, 20, "last_error cleared")
        assert agent.trust_version == 2
