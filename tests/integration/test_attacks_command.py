"""Attacks with deployment commands (replays, other devices, expiry, missing or foreign
signatures) against a real agent serving det 1.0.0. Each names a genuine, release-signed
det 2.0.0 bundle, so only the command stands between the attacker and an install: it is
refused in one line (``last_error``), not a byte of the bundle is fetched, nothing is
installed and the previous model keeps serving (``assert_untouched``).

What is shared (the serving agent, ``assert_untouched``) is in ``tests.support.attacks``."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from model_store import bundle_files, generate_private_key, load_private_key
from protocol import (
    DESIRED_STATE_PAYLOAD_TYPE,
    EnvelopeSignature,
    ModelAssignment,
    SignedEnvelope,
    encode,
)
from tests.support.attacks import (
    SLOW_RETRY,
    Serving,
    assert_untouched,
    installed,
    make_bundle,
    module_serving,
    oip_outputs,
    serving_v1,
    wait_activated,
    wait_refused,
)
from tests.support.blobserver import desired_state, sign_command
from tests.support.deploy import DEVICE, open_setup, ort_run
from tests.support.mosquitto import Broker
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
OTHER_DEVICE = "store-eu-002"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    with module_serving(tmp_path_factory, "attacks-command") as serving:
        yield serving


@pytest.fixture
def s(shared: Serving) -> Serving:
    shared.check_start()
    return shared


def _v2(s: Serving) -> ModelAssignment:
    """A genuine det 2.0.0, signed by the trusted release key, served."""
    return s.assignment(make_bundle(s.setup, "2.0.0"))


def _refuse(s: Serving, command: SignedEnvelope, expected: str, a: ModelAssignment) -> None:
    """Publish ``command``: refused for ``expected``, nothing fetched, nothing changed."""
    before, fetched = s.agent.refused_commands, len(s.setup.blobs.requests)
    s.setup.watcher.command(command)
    wait_refused(s, before, expected)
    assert len(s.setup.blobs.requests) == fetched  # not a byte of the bundle
    assert_untouched(s, a)
    wait_until(
        lambda: (
            (st := s.setup.watcher.last_state()) is not None and st.last_error == s.agent.last_error
        ),
        10,
        "the refusal in the state report",
    )


def test_attack_command_for_other_device(s: Serving) -> None:
    """Device A's validly signed command, replayed on device B's (this agent's) topic."""
    a = _v2(s)
    for_a = sign_command(
        desired_state(OTHER_DEVICE, s.next_generation(), a), s.setup.watcher.signers
    )
    _refuse(s, for_a, f"command is for device {OTHER_DEVICE!r}, not this one", a)


def test_attack_expired_command(s: Serving) -> None:
    a = _v2(s)
    generation = s.next_generation()
    state = desired_state(DEVICE, generation, a, expires_in=timedelta(seconds=-1))
    _refuse(s, sign_command(state, s.setup.watcher.signers), f"generation {generation} expired", a)


@pytest.mark.parametrize("signer", ["a fresh key", "the release key", "the root key"])
def test_attack_command_signed_by_uncertified_key(s: Serving, signer: str) -> None:
    """Signed, but not by a key the trust document certifies for the control-plane role."""
    kit = s.setup.kit
    key = {
        "a fresh key": generate_private_key(),
        "the release key": load_private_key(kit.release_key),
        "the root key": load_private_key(kit.root_key),
    }[signer]
    a = _v2(s)
    command = sign_command(desired_state(DEVICE, s.next_generation(), a), [key])
    _refuse(s, command, "not signed by a certified control-plane key (trust version 1)", a)


def test_attack_unsigned_command(s: Serving) -> None:
    """A DSSE envelope whose only "signature" is a placeholder by no key."""
    a = _v2(s)
    payload = encode(desired_state(DEVICE, s.next_generation(), a))
    unsigned = SignedEnvelope(
        payloadType=DESIRED_STATE_PAYLOAD_TYPE,
        payload=base64.b64encode(payload).decode("ascii"),
        signatures=[EnvelopeSignature(keyid="", sig="AA==")],
    )
    _refuse(s, unsigned, "envelope is not signed by a trusted key", a)


def test_attack_unsigned_command_bare_payload(s: Serving, caplog: pytest.LogCaptureFixture) -> None:
    """A bare DesiredState (not even an envelope): counted as malformed and ignored. By
    design (docs/agent.md) this is not a refusal: its one-line reason is logged, and
    ``last_error`` is not touched."""
    a = _v2(s)
    before, fetched = s.agent.malformed_messages, len(s.setup.blobs.requests)
    error = s.agent.last_error
    with caplog.at_level(logging.WARNING, logger="agent.link.mqtt_link"):
        s.setup.watcher.raw(encode(desired_state(DEVICE, s.next_generation(), a)))
        wait_until(lambda: s.agent.malformed_messages == before + 1, 10, "malformed counted")
        # the count and the log line come from the link's thread, not in a fixed order
        wait_until(
            lambda: any("ignored malformed" in r.getMessage() for r in caplog.records),
            10,
            "malformed logged",
        )
    lines = [r.getMessage() for r in caplog.records if "ignored malformed" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert s.agent.last_error == error
    assert len(s.setup.blobs.requests) == fetched
    assert_untouched(s, a)


# -- these change what the agent serves, so each has an agent of its own ----------------


def test_attack_replayed_older_generation(tmp_path: Path, mosquitto: Broker) -> None:
    """An older, genuinely signed (and once accepted) command replayed after a newer one
    was accepted; again after the agent restarted."""
    with open_setup(tmp_path, mosquitto) as setup:
        with serving_v1(setup) as s:
            v2_dir = make_bundle(setup, "2.0.0")
            a2 = s.assignment(v2_dir)
            older = setup.watcher.desire(s.next_generation(), a2)  # generation 2
            wait_activated(s, a2)
            rollback = s.v1.model_copy(update={"deployment_id": next(s.deployments)})
            setup.watcher.desire(s.next_generation(), rollback)  # generation 3: back to v1
            wait_activated(s, rollback)
            s.rebase(s.v1, s.v1_dir)  # v1 serves; v1 and v2 are installed
            assert s.baseline == {s.v1.bundle_digest, a2.bundle_digest}
            before = s.agent.refused_commands
            setup.watcher.command(older)  # would roll the device forward to v2 again
            wait_refused(s, before, "generation 2 is lower than the accepted 3")
            assert_untouched(s)
        # the replayed command is still retained: the restarted agent gets it at once
        with setup.agent(retry_backoff_s=SLOW_RETRY) as again:
            s.agent = again
            assert again.generation == 3
            assert again.wait_connected(10)
            wait_until(lambda: again.refused_commands >= 1, 10, "retained replay refused")
            refused = again.refused_commands
            setup.watcher.command(older)  # and once more, live
            wait_refused(s, refused, "generation 2 is lower than the accepted 3")
            assert_untouched(s)


def test_attack_same_version_different_content(tmp_path: Path, mosquitto: Broker) -> None:
    """Two differently built bundles claiming the same name and version.

    What the code does: a command is bound to its generation, and bundles are addressed
    by digest, never by name and version. So (1) another det 1.0.0 at the generation that
    activated v1 is refused; (2) of two det 2.0.0 builds at one generation, the first is
    accepted and the second refused; (3) another, validly signed det 1.0.0 gets in only
    with a new, higher generation, and not silently: it is installed beside v1 (whose
    directory stays byte-identical) and the state report names its new bundle digest."""
    with open_setup(tmp_path, mosquitto) as setup, serving_v1(setup) as s:
        other_v1_dir = make_bundle(setup, "1.0.0")
        other_v1 = s.assignment(other_v1_dir)
        assert other_v1.bundle_digest != s.v1.bundle_digest
        _refuse(
            s,
            sign_command(desired_state(DEVICE, 1, other_v1), setup.watcher.signers),
            "generation 1 was already accepted with different content",
            other_v1,
        )

        first_dir, second_dir = make_bundle(setup, "2.0.0"), make_bundle(setup, "2.0.0")
        first, second = s.assignment(first_dir), s.assignment(second_dir)
        assert first.bundle_digest != second.bundle_digest
        generation = s.next_generation()
        setup.watcher.desire(generation, first)
        wait_activated(s, first)
        s.rebase(first, first_dir)
        _refuse(
            s,
            sign_command(desired_state(DEVICE, generation, second), setup.watcher.signers),
            f"generation {generation} was already accepted with different content",
            second,
        )

        setup.watcher.desire(s.next_generation(), other_v1)
        wait_activated(s, other_v1)
        assert [(m.version, m.bundle_digest) for m in s.agent.active] == [
            ("1.0.0", other_v1.bundle_digest)
        ]
        wait_until(
            lambda: (
                (st := setup.watcher.last_state()) is not None
                and [m.bundle_digest for m in st.active] == [other_v1.bundle_digest]
            ),
            10,
            "the new bundle digest in the state report",
        )
        assert installed(s.agent) == {
            s.v1.bundle_digest,
            first.bundle_digest,
            other_v1.bundle_digest,
        }
        s.rebase(other_v1, other_v1_dir)
        assert_untouched(s)  # (the new det 1.0.0 serves, byte-identical to what was signed)
        v1_on_disk = bundle_files(s.agent.config.data_dir / "models" / s.v1.bundle_digest)
        assert {(f.path, f.sha256) for f in v1_on_disk} == {(f.path, f.sha256) for f in s.v1.files}
        inputs: dict[str, np.ndarray] = {
            "x": np.ones((1, 4), dtype=np.float32),
            "ids": np.array([1], dtype=np.int64),
        }
        served = oip_outputs(s.agent, "det", inputs)["y"]
        assert not np.array_equal(served, ort_run(s.v1_dir, inputs)["y"])
