"""A failed deployment never takes down what is serving (issue 13, point 2), and one
model's failure changes nothing for another (issue 14).

Two models, built in code: ``det`` serves; a deployment command then names the set
``det`` + ``cls`` (a push of ``cls`` adds it). When ``cls`` fails, ``det`` keeps serving,
also across a restart, the device reports it as ``active`` and reports ``cls``'s own
failure. ``det`` leaves only when a command no longer names it (the operator undeploys
it), and then at once, even while ``cls`` is being retried.

A real in-process agent, a real Mosquitto, a real HTTP blob server, real signed bundles,
ONNX Runtime; outputs checked against a direct onnxruntime run.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agent import Agent
from protocol import DeviceStatus, EventKind, StateReport
from tests.support.deploy import (
    Setup,
    assert_served,
    det_inputs,
    oip_infer,
    ort_run,
    outputs_of,
)
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
#: a signed, valid bundle whose outputs are NaN: it fails the health gate (warming_up)
NAN = float("nan")


def _ready(agent: Agent, name: str) -> int:
    return httpx.get(f"{agent.local_api_url}/v2/models/{name}/ready", timeout=10).status_code


def _settled(setup: Setup, generation: int) -> StateReport:
    """The last state report of ``generation`` (a report names a generation once its
    outcome is recorded, never while it is applied)."""

    def found() -> StateReport | None:
        with setup.watcher.lock:
            return next(
                (s for s in reversed(setup.watcher.states) if s.generation == generation), None
            )

    wait_until(lambda: found() is not None, 30, f"a settled report of generation {generation}")
    state = found()
    assert state is not None
    return state


def _serves_det(agent: Agent, bundle: Path) -> None:
    assert _ready(agent, "det") == 200
    inputs = det_inputs()
    assert_served(agent, outputs_of(oip_infer(agent, "det", inputs)), ort_run(bundle, inputs))


@pytest.mark.parametrize("fault", ["warm-up", "download"])
def test_a_failed_push_of_another_model_keeps_the_served_one(setup: Setup, fault: str) -> None:
    det = setup.bundle("det", "1.0.0", weight=0.5)
    cls = setup.bundle("cls", "2.0.0", weight=NAN if fault == "warm-up" else 2.0)
    with setup.agent() as agent:
        setup.watcher.desire(1, setup.assignment(det))
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "det active")
        _serves_det(agent, det)

        bad = setup.assignment(cls, deployment_id=2)
        if fault == "download":  # the control plane lost the model file: HTTP 404
            model = next(f for f in bad.files if f.path == "model.onnx")
            del setup.blobs.blobs[model.sha256]
        setup.watcher.desire(2, setup.assignment(det), bad)
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("2.0.0"), 30, "cls failed")
        wait_until(lambda: agent.generation == 2, 10, "generation 2 processed")

        # nothing that served changed: det answers, with the same outputs
        _serves_det(agent, det)
        assert _ready(agent, "cls") == 404
        state = _settled(setup, 2)
        assert state.status == DeviceStatus.ACTIVE
        assert [(m.name, m.version) for m in state.active] == [("det", "1.0.0")]
        assert state.last_error is not None and state.last_error.startswith("cls 2.0.0: ")
        assert [(f.name, f.version, f.retrying) for f in state.failures] == [
            ("cls", "2.0.0", False)
        ]

    # a restart serves det again (it is still the committed version) and does not retry
    with setup.watcher.lock:
        setup.watcher.states.clear()
    with setup.agent() as agent:
        _serves_det(agent, det)
        assert agent.status == DeviceStatus.ACTIVE
        assert agent.last_error is not None and agent.last_error.startswith("cls 2.0.0: ")


def test_a_model_leaves_when_a_command_no_longer_names_it(setup: Setup) -> None:
    det = setup.bundle("det", "1.0.0", weight=0.5)
    cls = setup.bundle("cls", "2.0.0", weight=2.0)
    with setup.agent() as agent:
        setup.watcher.desire(1, setup.assignment(det))
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "det active")

        setup.watcher.desire(2, setup.assignment(cls, deployment_id=2))
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "cls active")
        state = _settled(setup, 2)
        assert [(m.name, m.version) for m in state.active] == [("cls", "2.0.0")]
        assert state.status == DeviceStatus.ACTIVE and state.last_error is None
        assert _ready(agent, "det") == 404
        inputs = det_inputs()
        assert_served(
            agent, outputs_of(oip_infer(agent, "cls", inputs)), ort_run(cls, inputs), "cls"
        )

        # a command naming no model: the operator removes everything on purpose
        setup.watcher.desire(3)
        state = _settled(setup, 3)
        assert state.active == [] and state.status == DeviceStatus.IDLE
        assert _ready(agent, "cls") == 404


def test_a_retried_model_holds_back_no_other(setup: Setup) -> None:
    det = setup.bundle("det", "1.0.0", weight=0.5)
    cls = setup.bundle("cls", "2.0.0", weight=2.0)
    with setup.agent(retry_backoff_s=(0.2, 0.4)) as agent:
        setup.watcher.desire(1, setup.assignment(det))
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "det active")

        setup.blobs.unavailable = True  # the control plane answers 503: cls is retried
        setup.watcher.desire(2, setup.assignment(det), setup.assignment(cls, deployment_id=2))
        wait_until(lambda: setup.watcher.kinds("2.0.0").count(EventKind.RETRYING) >= 2, 30, "retry")
        _serves_det(agent, det)

        def reported_retrying() -> list[StateReport]:
            # between two attempts (an attempt in flight reports downloading)
            with setup.watcher.lock:
                return [s for s in setup.watcher.states if s.generation == 2 and s.retrying]

        wait_until(lambda: len(reported_retrying()) > 0, 10, "a report while retrying")
        for state in reported_retrying():
            assert [(m.name, m.version) for m in state.active] == [("det", "1.0.0")]
            assert [(f.name, f.retrying) for f in state.failures] == [("cls", True)]
        assert any(s.status == DeviceStatus.ACTIVE for s in reported_retrying())

        # the operator undeploys det while cls is still retried: det leaves at once
        setup.watcher.desire(3, setup.assignment(cls, deployment_id=2))
        wait_until(lambda: _ready(agent, "det") == 404, 30, "det unloaded")

        setup.blobs.unavailable = False  # back: cls activates
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "cls active")
        assert _ready(agent, "cls") == 200
        wait_until(lambda: agent.last_error is None, 10, "last_error cleared")
        assert [(m.name, m.version) for m in agent.active] == [("cls", "2.0.0")]
