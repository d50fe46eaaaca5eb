"""A device that fails converges: transient download failures are retried (backoff, and
at once when the desired state is re-delivered) and reported as ``retrying`` (with when),
``failed`` only once the agent gives up (a permanent failure, or its command expired
while it retried); the outcome of the last generation survives a restart.

Real Mosquitto, a real HTTP blob server that can answer 503 (control plane down), real
signed bundles and ONNX Runtime; nothing of the agent is faked."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta

import pytest

from agent import Agent
from protocol import DeviceStatus, EventKind, StateReport
from tests.support.deploy import Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


def _state_json(agent: Agent) -> dict[str, object]:
    data: dict[str, object] = json.loads((agent.config.data_dir / "state.json").read_text())
    return data


def _last_state(setup: Setup) -> StateReport:
    state = setup.watcher.last_state()
    assert state is not None
    return state


def test_transient_failure_is_retried_until_it_activates(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.deployment")
    a1 = setup.assignment(setup.bundle("det", "1.0.0"))
    setup.blobs.unavailable = True  # the control plane answers 503
    setup.watcher.desire(1, a1)
    with setup.agent(retry_backoff_s=(0.2, 0.8)) as agent:
        wait_until(lambda: EventKind.RETRYING in setup.watcher.kinds("1.0.0"), 20, "RETRYING")
        retrying = next(e for e in setup.watcher.events if e.kind == EventKind.RETRYING)
        # what failed, and when the agent tries again by itself
        assert retrying.reason is not None and "HTTP 503" in retrying.reason
        assert "; retrying in 0.2s (at " in retrying.reason
        wait_until(lambda: agent.last_error is not None, 10, "last_error")
        assert agent.status == DeviceStatus.FAILED  # nothing serves yet

        # the worker retries on its own, with a growing delay, each retry logged
        def delays() -> list[float]:
            found = (
                re.search(r"retrying in ([\d.]+)s", r.getMessage())
                for r in caplog.records
                if r.name == "agent.deployment.manager"
            )
            return [float(m.group(1)) for m in found if m]

        # the state report says the error is not final: the agent retries by itself
        wait_until(lambda: _last_state(setup).retrying, 10, "a report that says retrying")
        assert _last_state(setup).last_error is not None
        wait_until(lambda: len(delays()) >= 3, 10, "three failed attempts")
        assert delays()[:3] == [0.2, 0.4, 0.8]
        # a failure the agent retries by itself is never reported as failed
        assert EventKind.FAILED not in setup.watcher.kinds("1.0.0")
        assert setup.blobs.refused >= 3
        assert _state_json(agent)["retryable"] is True

        setup.blobs.unavailable = False  # the control plane is back; no new desired state
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        # a report may show ACTIVE before the generation's outcome is saved (a heartbeat
        # between the commit and the outcome): wait for the settled report, don't race it
        wait_until(
            lambda: (
                (s := _last_state(setup)).status == DeviceStatus.ACTIVE and s.last_error is None
            ),
            20,
            "ACTIVE with last_error cleared",
        )
        state = _last_state(setup)
        assert state.generation == 1 and state.last_error is None and not state.retrying
        assert [m.version for m in state.active] == ["1.0.0"]
        assert EventKind.FAILED not in setup.watcher.kinds("1.0.0")
        assert _state_json(agent)["retryable"] is False
        # and the retry timer is gone: nothing is fetched any more
        fetched = len(setup.blobs.requests)
        time.sleep(1.0)
        assert len(setup.blobs.requests) == fetched


def test_transient_failure_is_retried_at_once_on_restart(setup: Setup) -> None:
    a1 = setup.assignment(setup.bundle("det", "1.0.0"))
    setup.blobs.unavailable = True
    setup.watcher.desire(1, a1)
    slow = (600.0, 600.0)  # the worker would wait ten minutes: only re-delivery retries now
    with setup.agent(retry_backoff_s=slow) as agent:
        wait_until(lambda: EventKind.RETRYING in setup.watcher.kinds("1.0.0"), 20, "RETRYING")
        wait_until(lambda: agent.last_error is not None, 10, "last_error")
        error = agent.last_error
    setup.blobs.unavailable = False

    restarted = setup.agent(retry_backoff_s=slow)
    restarted.start()
    try:
        # before the broker re-delivers anything, the failure is still reported
        assert restarted.last_error == error
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        # ACTIVATED is published before the generation's outcome is saved and shown
        wait_until(lambda: restarted.last_error is None, 20, "last_error cleared")
        assert restarted.generation == 1
        assert EventKind.FAILED not in setup.watcher.kinds("1.0.0")
    finally:
        restarted.stop()


def test_permanent_failure_is_final_and_reported_after_restart(setup: Setup) -> None:
    bundle = setup.bundle("det", "1.0.0")
    a1 = setup.assignment(bundle)
    model_ref = next(f for f in a1.files if f.path == "model.onnx")
    good = setup.blobs.blobs[model_ref.sha256]
    setup.blobs.blobs[model_ref.sha256] = good[:-1] + bytes([good[-1] ^ 0xFF])  # tampered
    setup.watcher.desire(1, a1)
    with setup.agent(retry_backoff_s=(0.1, 0.2)) as agent:
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("1.0.0"), 20, "FAILED")
        wait_until(lambda: _last_state(setup).status == DeviceStatus.FAILED, 10, "FAILED state")
        fetched = len(setup.blobs.requests)
        time.sleep(1.0)  # several backoff periods: a transient failure would be retried
        assert len(setup.blobs.requests) == fetched
        assert setup.watcher.kinds("1.0.0").count(EventKind.FAILED) == 1
        error = agent.last_error
        assert error is not None and "model.onnx" in error
        assert _state_json(agent)["failed"] is True
        assert _state_json(agent)["retryable"] is False

    with setup.watcher.lock:
        setup.watcher.states.clear()
    restarted = setup.agent(retry_backoff_s=(0.1, 0.2))
    restarted.start()
    try:
        assert restarted.status == DeviceStatus.FAILED and restarted.last_error == error
        wait_until(lambda: setup.watcher.last_state() is not None, 10, "state after restart")
        assert _last_state(setup).last_error == error
        assert _last_state(setup).status == DeviceStatus.FAILED
        time.sleep(0.5)  # the retained desired state came back and was not applied again
        assert len(setup.blobs.requests) == fetched

        # a new generation that succeeds clears the error, also across a restart
        setup.blobs.blobs[model_ref.sha256] = good
        setup.watcher.desire(2, setup.assignment(bundle, deployment_id=2))
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        wait_until(lambda: restarted.last_error is None, 10, "error cleared")
    finally:
        restarted.stop()
    with setup.agent() as again:
        assert again.last_error is None and again.status == DeviceStatus.ACTIVE


def test_the_agent_gives_up_when_the_command_expires_while_it_retries(setup: Setup) -> None:
    a1 = setup.assignment(setup.bundle("det", "1.0.0"))
    setup.blobs.unavailable = True  # the control plane answers 503 past the expiry
    setup.watcher.desire(1, a1, expires_in=timedelta(seconds=4))
    with setup.agent(retry_backoff_s=(0.2, 0.4)) as agent:
        wait_until(lambda: EventKind.RETRYING in setup.watcher.kinds("1.0.0"), 20, "RETRYING")
        assert EventKind.FAILED not in setup.watcher.kinds("1.0.0")
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("1.0.0"), 20, "FAILED")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED]
        assert len(failed) == 1 and failed[0].reason is not None
        assert "HTTP 503" in failed[0].reason and "; gave up: " in failed[0].reason
        assert "expired" in failed[0].reason
        wait_until(lambda: _state_json(agent)["retryable"] is False, 10, "not retryable")
        wait_until(lambda: not _last_state(setup).retrying, 10, "a report that says final")
        fetched = len(setup.blobs.requests)
        time.sleep(1.0)  # several backoff periods: no attempt after giving up
        assert len(setup.blobs.requests) == fetched
        assert setup.watcher.kinds("1.0.0")[-1] == EventKind.FAILED
