"""Signed deployment commands: only a certified control-plane key's command for this
device, not expired, with a higher generation (or the same one, unchanged) is acted on.

Real Mosquitto, a real HTTP blob server, real signed bundles and ONNX Runtime. Each
refusal leaves the previous model serving, is counted and reported in ``last_error``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import pytest

from agent import Agent
from model_store import generate_private_key, load_private_key
from protocol import (
    DeviceStatus,
    EventKind,
    ModelAssignment,
    SignedEnvelope,
    encode,
)
from tests.support.blobserver import desired_state, sign_command
from tests.support.deploy import DEVICE, Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
X: dict[str, np.ndarray] = {
    "x": np.ones((1, 4), dtype=np.float32),
    "ids": np.array([3], dtype=np.int64),
}


def _state_json(agent: Agent) -> dict[str, object]:
    data: dict[str, object] = json.loads((agent.config.data_dir / "state.json").read_text())
    return data


@contextmanager
def serving_v1(
    setup: Setup, generation: int = 5
) -> Iterator[tuple[Agent, ModelAssignment, SignedEnvelope]]:
    """An agent serving det 1.0.0, accepted at ``generation`` (and that command)."""
    a1 = setup.assignment(setup.bundle("det", "1.0.0", weight=0.5))
    envelope = setup.watcher.desire(generation, a1)
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "v1 ACTIVATED")
        wait_until(lambda: agent.status == DeviceStatus.ACTIVE, 10, "ACTIVE")
        yield agent, a1, envelope


def _assert_refused(agent: Agent, setup: Setup, expected: str, *, refused: int = 1) -> None:
    wait_until(lambda: agent.refused_commands == refused, 10, f"command refused ({expected})")
    assert agent.last_error is not None
    assert agent.last_error.startswith("refused deployment command: "), agent.last_error
    assert expected in agent.last_error and "\n" not in agent.last_error
    assert [m.version for m in agent.active] == ["1.0.0"]
    assert agent.status == DeviceStatus.ACTIVE
    assert agent.infer("det", X)["y"].shape == (1, 3)  # the previous model still serves
    assert setup.watcher.kinds("2.0.0") == []  # nothing of the refused command happened
    wait_until(
        lambda: (s := setup.watcher.last_state()) is not None and s.last_error == agent.last_error,
        10,
        "refusal reported in the state report",
    )


def _forged(setup: Setup, a2: ModelAssignment, case: str) -> SignedEnvelope | bytes:
    """The command of each refusal case (v2 for the device, at generation 6 unless said)."""
    good = desired_state(DEVICE, 6, a2)
    cp = setup.watcher.signers
    if case == "unsigned":  # a bare DesiredState: not even an envelope
        return encode(good)
    if case == "bad signature":  # the certified key id, but the signature is someone else's
        forged = sign_command(good, [generate_private_key()])
        sig = forged.signatures[0].model_copy(
            update={"keyid": sign_command(good, cp).signatures[0].keyid}
        )
        return forged.model_copy(update={"signatures": [sig]})
    if case == "uncertified key":
        return sign_command(good, [generate_private_key()])
    if case == "release key":  # certified, but for bundles, not commands
        return sign_command(good, [load_private_key(setup.kit.release_key)])
    if case == "other device":
        return sign_command(desired_state("store-eu-002", 6, a2), cp)
    if case == "expired":
        return sign_command(desired_state(DEVICE, 6, a2, expires_in=timedelta(seconds=-1)), cp)
    if case == "lower generation":
        return sign_command(desired_state(DEVICE, 4, a2), cp)
    if case == "same generation, other content":
        return sign_command(desired_state(DEVICE, 5, a2), cp)
    if case == "wrong payload type":
        envelope = sign_command(good, cp)
        return envelope.model_copy(
            update={"payload_type": "application/vnd.edgefleet.trust.v1+json"}
        )
    raise AssertionError(case)


CASES: dict[str, str] = {
    "bad signature": "not signed by a certified control-plane key",
    "uncertified key": "not signed by a certified control-plane key",
    "release key": "not signed by a certified control-plane key",
    "wrong payload type": "wrong payload type",
    "other device": "is for device 'store-eu-002'",
    "expired": "generation 6 expired at",
    "lower generation": "generation 4 is lower than the accepted 5",
    "same generation, other content": "generation 5 was already accepted with different content",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_commands_change_nothing(setup: Setup, case: str) -> None:
    with serving_v1(setup) as (agent, _, _):
        a2 = setup.assignment(setup.bundle("det", "2.0.0", weight=3.0), deployment_id=2)
        fetched = len(setup.blobs.requests)
        command = _forged(setup, a2, case)
        assert isinstance(command, SignedEnvelope)
        setup.watcher.command(command)
        _assert_refused(agent, setup, CASES[case])
        assert len(setup.blobs.requests) == fetched  # not a byte of v2 was fetched
        state = _state_json(agent)
        assert state["accepted_generation"] == 5 and state["generation"] == 5


def test_unsigned_desired_state_is_malformed_and_ignored(setup: Setup) -> None:
    with serving_v1(setup) as (agent, _, _):
        a2 = setup.assignment(setup.bundle("det", "2.0.0", weight=3.0), deployment_id=2)
        raw = _forged(setup, a2, "unsigned")
        assert isinstance(raw, bytes)
        setup.watcher.raw(raw)
        wait_until(lambda: agent.malformed_messages == 1, 10, "malformed counted")
        assert [m.version for m in agent.active] == ["1.0.0"]
        assert setup.watcher.kinds("2.0.0") == []


def test_identical_redelivery_is_a_no_op(setup: Setup) -> None:
    with serving_v1(setup) as (agent, _, envelope):
        fetched = len(setup.blobs.requests)
        events = len(setup.watcher.events)
        # the very same command again (as the broker re-delivers it after a reconnect)
        setup.watcher.command(envelope)
        setup.watcher.command(envelope)
        time.sleep(0.5)
        assert agent.refused_commands == 0 and agent.last_error is None
        assert len(setup.blobs.requests) == fetched and len(setup.watcher.events) == events


def test_rollback_is_a_higher_generation_and_the_generation_survives_restart(
    setup: Setup,
) -> None:
    with serving_v1(setup) as (agent, a1, _):
        v2 = setup.bundle("det", "2.0.0", weight=3.0)
        a2 = setup.assignment(v2, deployment_id=2)
        old = setup.watcher.desire(6, a2)
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 20, "v2")
        # operator rollback: a new, higher generation pointing at the older bundle
        setup.watcher.desire(7, a1.model_copy(update={"deployment_id": 3}))
        # v1 serves again before generation 7's outcome is recorded: wait for both
        wait_until(
            lambda: [m.version for m in agent.active] == ["1.0.0"] and agent.generation == 7,
            20,
            "rolled back, generation 7 processed",
        )
        assert agent.last_error is None
        assert _state_json(agent)["accepted_generation"] == 7
    # restart, then the older (validly signed) generation 6 is replayed: refused
    restarted = setup.agent()
    restarted.start()
    try:
        assert restarted.generation == 7 and [m.version for m in restarted.active] == ["1.0.0"]
        assert restarted.wait_connected(10)
        setup.watcher.command(old)
        # (it may arrive twice: live, and as the retained message when the agent's
        # subscription is renewed right after it reconnected; each is refused)
        wait_until(lambda: restarted.refused_commands >= 1, 10, "replay refused")
        assert restarted.last_error is not None
        assert "generation 6 is lower than the accepted 7" in restarted.last_error
        assert [m.version for m in restarted.active] == ["1.0.0"]
        assert setup.watcher.kinds("2.0.0").count(EventKind.RECEIVED) == 1
    finally:
        restarted.stop()


def test_command_is_persisted_before_it_is_acted_on(setup: Setup) -> None:
    """Accepted before acting: a command whose download is pending is already recorded."""
    a1 = setup.assignment(setup.bundle("det", "1.0.0"))
    setup.blobs.unavailable = True  # nothing can be downloaded
    envelope = setup.watcher.desire(3, a1)
    with setup.agent(retry_backoff_s=(600.0, 600.0)) as agent:
        wait_until(lambda: agent.last_error is not None, 20, "transient failure")
        state = _state_json(agent)
        assert state["accepted_generation"] == 3 and state["retryable"] is True
        digest = state["accepted_digest"]
        assert isinstance(digest, str) and len(digest) == 64
    setup.blobs.unavailable = False
    # after a restart the same command (re-delivered, retained) is applied: not a replay
    with setup.agent(retry_backoff_s=(600.0, 600.0)) as again:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        assert again.refused_commands == 0
    assert envelope.payload_type.startswith("application/vnd.edgefleet.desired-state")
