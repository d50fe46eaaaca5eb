"""Selector paths with fake runners (fast): the fp32 reference is found even when a
lower-precision candidate is listed first, and a runner is closed on every path, an
unexpected error while checking it included."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from agent.errors import InferenceError
from hw_profiles import CandidateSpec
from tests.support.selection import selector_for

OV_BF16 = CandidateSpec("openvino", "CPU", "bf16")
OV_F32 = CandidateSpec("openvino", "CPU", "f32")
OV_GPU = CandidateSpec("openvino", "GPU", "f16")


class _Runner:
    """Duck-typed runner: y = 2x, with a slightly different rounding per precision."""

    def __init__(self, spec: CandidateSpec, opened: list[_Runner]) -> None:
        self.spec, self.closed, self._opened = spec, False, opened
        opened.append(self)

    def infer(self, inputs: Any) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["x"], dtype=np.float32)
        y = x * 2
        return {"y": y if self.spec.precision == "f32" else y * (1 + 1e-4)}

    def close(self) -> None:
        self.closed = True


def _select(tmp_path: Path, *specs: CandidateSpec, inputs_for: Any = None) -> Any:
    opened: list[_Runner] = []
    selector = selector_for(tmp_path, *specs, budget_s=0.5)
    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("openvino",),
        load=lambda spec: cast(Any, _Runner(spec, opened)),
        inputs_for=inputs_for or (lambda runner: {"x": np.ones((1, 4), np.float32)}),
    )
    return selection, opened


def test_a_lower_precision_candidate_listed_first_is_checked_against_the_fp32_one(
    tmp_path: Path,
) -> None:
    # as x86-avx512 lists OpenVINO's candidates (bf16 first) for an OpenVINO-only bundle
    selection, opened = _select(tmp_path, OV_BF16, OV_F32, OV_GPU)
    figures = {m.key: m for m in selection.measurements}
    assert [m.key for m in selection.measurements] == [OV_BF16.key, OV_F32.key, OV_GPU.key]
    for spec in (OV_BF16, OV_GPU):
        assert figures[spec.key].excluded is None or "budget" in figures[spec.key].excluded
        assert figures[spec.key].rel_error is not None  # judged by the guard
    assert [r.closed for r in opened if r is not selection.runner] == [True] * (len(opened) - 1)
    selection.runner.close()


def test_a_runner_is_closed_when_its_check_fails_unexpectedly(tmp_path: Path) -> None:
    calls = 0

    def inputs_for(runner: Any) -> Any:
        nonlocal calls
        calls += 1
        raise ValueError("broken input hints")  # not an AgentError

    opened: list[_Runner] = []
    selector = selector_for(tmp_path, OV_F32, OV_BF16, budget_s=0.5)
    with pytest.raises(ValueError, match="broken input hints"):
        selector.select(
            bundle_digest="d" * 64,
            runtimes=("openvino",),
            load=lambda spec: cast(Any, _Runner(spec, opened)),
            inputs_for=inputs_for,
        )
    assert calls == 1 and len(opened) == 1 and opened[0].closed


def test_a_budget_spent_before_any_pair_says_so(tmp_path: Path) -> None:
    opened: list[_Runner] = []
    selector = selector_for(tmp_path, OV_F32, OV_BF16, budget_s=0.0)
    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("openvino",),
        load=lambda spec: cast(Any, _Runner(spec, opened)),
        inputs_for=lambda runner: {"x": np.ones((1, 4), np.float32)},
    )
    assert selection.chosen == OV_F32.key and len(opened) == 1
    assert "budget" in selection.reason and "only candidate" not in selection.reason
    assert selection.measurements[1].excluded is not None
    assert "budget" in selection.measurements[1].excluded
    selection.runner.close()
    again = selector.select(  # a choice the budget cut short is not cached
        bundle_digest="d" * 64,
        runtimes=("openvino",),
        load=lambda spec: cast(Any, _Runner(spec, opened)),
        inputs_for=lambda runner: {"x": np.ones((1, 4), np.float32)},
    )
    assert not again.cached and "budget" in again.reason
    again.runner.close()


class _Flaky(_Runner):
    """Fails every run after its first ``good`` ones (a backend that breaks under load)."""

    good = 4

    def infer(self, inputs: Any) -> dict[str, np.ndarray]:
        self.good -= 1
        if self.good < 0:
            raise InferenceError("the device was lost")
        return super().infer(inputs)


@pytest.mark.parametrize("failing", ["challenger", "champion"])
def test_a_candidate_failing_while_timed_is_excluded_and_the_other_serves(
    tmp_path: Path, failing: str
) -> None:
    opened: list[_Runner] = []
    flaky = OV_BF16 if failing == "challenger" else OV_F32

    def load(spec: CandidateSpec) -> Any:
        return (_Flaky if spec == flaky else _Runner)(spec, opened)

    selector = selector_for(tmp_path, OV_F32, OV_BF16, budget_s=0.5)
    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("openvino",),
        load=load,
        inputs_for=lambda runner: {"x": np.ones((1, 4), np.float32)},
    )
    figures = {m.key: m for m in selection.measurements}
    assert selection.chosen != flaky.key
    excluded = figures[flaky.key].excluded
    assert excluded is not None and excluded.startswith("run failed while timed:")
    assert "the device was lost" in excluded
    assert [r.closed for r in opened if r is not selection.runner] == [True] * (len(opened) - 1)
    selection.runner.close()
