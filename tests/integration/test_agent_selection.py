"""Measured selection in a real agent: figures reported, pins from the deployment command
override the measurement (also for the version already serving), an operator's
re-selection measures again, a restart hits the cache."""

from __future__ import annotations

import pytest

from protocol import DeviceStatus, EventKind, StateReport
from tests.support.deploy import Setup, det_inputs
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration

ORT = "onnxruntime:CPUExecutionProvider:f32"
OV = "openvino:CPU:f32"


def _state(setup: Setup, backend: str) -> StateReport:
    def ok() -> bool:
        s = setup.watcher.last_state()
        return s is not None and [m.backend for m in s.active] == [backend]

    wait_until(ok, 30, f"a state report with backend {backend}")
    state = setup.watcher.last_state()
    assert state is not None
    return state


def test_selection_is_reported_and_pins_override_it(setup: Setup) -> None:
    v1 = setup.bundle("det", "1.0.0")  # dynamic batch, float32 + int64 inputs
    a1 = setup.assignment(v1)
    setup.watcher.desire(1, a1)
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 60, "v1")
        chosen = agent.active[0].backend
        state = _state(setup, chosen)
        selection = state.active[0].selection
        assert selection is not None and selection.chosen == chosen and not selection.pinned
        measured = {c.key: c for c in selection.candidates}
        assert {ORT, OV} <= set(measured)
        # the budget may run out before a late variant, or, on a starved box, before the
        # first pair: then the reference serves untimed, and the reason says so
        timed = "3% faster to displace it" in selection.reason
        for figures in measured.values():
            untimed_champion = not timed and figures.key == chosen and figures.excluded is None
            assert (
                (figures.excluded is None and figures.p50_ms and figures.p99_ms)
                or untimed_champion
                or (figures.excluded or "").startswith("not measured: the selection budget")
            ), figures
        if timed:
            assert measured[chosen].p50_ms
        else:
            assert selection.reason.startswith("the first accurate candidate"), selection.reason
        fetched = len(setup.blobs.requests)

        # the operator pins the other backend: the same version moves to it, no download
        other = OV if chosen == ORT else ORT
        setup.watcher.desire(2, a1.model_copy(update={"backend": other}))
        state = _state(setup, other)
        assert state.active[0].selection is not None and state.active[0].selection.pinned
        assert state.active[0].selection.reason == "pinned by the operator"
        assert agent.infer("det", det_inputs(2))["y"].shape == (2, 3)
        assert len(setup.blobs.requests) == fetched

        # a pin this device cannot run fails the deployment; the pinned backend keeps serving
        setup.watcher.desire(3, a1.model_copy(update={"backend": "openvino:GPU:f16"}))
        wait_until(lambda: agent.generation == 3, 30, "generation 3")
        assert (
            agent.last_error is not None and "pinned backend openvino:GPU:f16" in agent.last_error
        )
        assert [m.backend for m in agent.active] == [other]
        assert agent.status == DeviceStatus.ACTIVE

        # the pin is lifted: measured again (from the cache: same bundle, same host)
        setup.watcher.desire(4, a1)
        state = _state(setup, chosen)
        assert state.active[0].selection is not None and state.active[0].selection.cached

        # the operator asks for a re-selection: measured again, the cache dropped
        setup.watcher.desire(5, a1.model_copy(update={"reselect": 1}))
        wait_until(lambda: agent.generation == 5, 60, "generation 5")

        def remeasured() -> bool:
            s = setup.watcher.last_state()
            picked = s.active[0].selection if s is not None and s.active else None
            return s is not None and s.generation == 5 and picked is not None and not picked.cached

        wait_until(remeasured, 30, "a state report with a fresh measurement")
        chosen = agent.active[0].backend
        assert len(setup.blobs.requests) == fetched

    # a restart loads the chosen backend from the selection cache, measuring nothing
    with setup.agent() as agent:
        assert [m.backend for m in agent.active] == [chosen]
        restored = agent.active[0].selection
        assert restored is not None and restored.cached and restored.chosen == chosen
