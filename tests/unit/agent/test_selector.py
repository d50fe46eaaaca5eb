"""Measured selection on real runners (ONNX Runtime, OpenVINO) and models built in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.deployment.gate import bundle_input_sets
from agent.deployment.loading import load_runner
from agent.errors import RunnerUnavailable
from agent.runners import available_runners
from hw_profiles import CandidateSpec
from model_store import build_bundle
from tests.support.awkward_models import reshape_model
from tests.support.selection import ORT, OV, OV_BF16, det_bundle, select, selector_for

needs_openvino = pytest.mark.skipif(
    "openvino" not in available_runners(), reason="OpenVINO is not installed"
)


@needs_openvino
def test_every_candidate_is_measured_and_the_winner_serves(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    selection, loads = select(selector_for(tmp_path, OV, ORT), bundle)
    try:
        assert sorted(loads) == sorted([ORT.key, OV.key])
        figures = {m.key: m for m in selection.measurements}
        assert set(figures) == {ORT.key, OV.key}
        for m in figures.values():
            assert m.excluded is None and m.p50_ms and m.p99_ms and m.runs >= 5
            assert m.rel_error is not None and m.rel_error < 1e-5
        # timed against each other: the challenger (OpenVINO) displaces the reference
        # (ONNX Runtime, the first champion) only when its p50 is 3% lower
        ort, ov = figures[ORT.key], figures[OV.key]
        assert ort.p50_ms and ov.p50_ms
        expected = OV.key if ov.p50_ms < ort.p50_ms * 0.97 else ORT.key
        assert selection.chosen == expected
        assert selection.chosen == selection.runner.backend
        x = np.ones((3, 4), dtype=np.float32)
        out = selection.runner.infer({"x": x, "ids": np.arange(3, dtype=np.int64)})
        assert out["y"].shape == (3, 3)
        summary = selection.summary()
        assert summary["chosen"] == selection.chosen and len(summary["candidates"]) == 2
    finally:
        selection.runner.close()


@needs_openvino
def test_the_guard_excludes_an_inaccurate_candidate(tmp_path: Path) -> None:
    if not any(cls.supports(OV_BF16) for cls in available_runners().values()):
        pytest.skip("this CPU has no bf16 for OpenVINO")
    bundle = det_bundle(tmp_path, weight=1.37)
    # bf16 keeps ~3 significant digits: within the default 1%, not within 1e-5
    selection, _ = select(selector_for(tmp_path, ORT, OV_BF16, tolerance=1e-5), bundle)
    try:
        bf16 = next(m for m in selection.measurements if m.key == OV_BF16.key)
        assert bf16.excluded is not None and "over" in bf16.excluded
        assert selection.chosen == ORT.key
    finally:
        selection.runner.close()


@needs_openvino
def test_a_restart_reuses_the_cached_choice_without_measuring(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    first, _ = select(selector_for(tmp_path, OV, ORT), bundle)
    first.runner.close()
    again, loads = select(selector_for(tmp_path, OV, ORT), bundle)  # a new selector: a restart
    try:
        assert again.cached and loads == [first.chosen] and again.chosen == first.chosen
        assert {m.key for m in again.measurements} == {OV.key, ORT.key}
    finally:
        again.runner.close()


@needs_openvino
def test_a_pin_wins_without_measuring(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    selection, loads = select(selector_for(tmp_path, ORT, OV), bundle, pin=OV.key)
    try:
        assert loads == [OV.key] and selection.chosen == OV.key
        assert selection.reason == "pinned by the operator"
    finally:
        selection.runner.close()
    with pytest.raises(RunnerUnavailable, match="pinned backend openvino:GPU:f16 is not"):
        select(selector_for(tmp_path, ORT, OV), bundle, pin="openvino:GPU:f16")


def test_a_candidate_that_fails_to_load_is_reported_not_fatal(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    broken = CandidateSpec(runtime="onnxruntime", device="CUDAExecutionProvider", precision="f32")
    selection, _ = select(selector_for(tmp_path, broken, ORT), bundle)
    try:
        failed = next(m for m in selection.measurements if m.key == broken.key)
        assert failed.excluded is not None and failed.excluded.startswith("load failed")
        assert selection.chosen == ORT.key
    finally:
        selection.runner.close()


class _Lenient:
    """A runner that answers any input with an empty tensor, as OpenVINO was seen to
    answer inputs ONNX Runtime (the reference) refused; the rest is the real runner's."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": np.zeros((0, 10), dtype=np.float32)}


@needs_openvino
def test_inputs_the_reference_cannot_run_leave_nothing_to_judge_the_others_by(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle"
    build_bundle(reshape_model(tmp_path / "src" / "model.onnx"), bundle, name="det", version="1")
    selector = selector_for(tmp_path, OV, ORT)

    def load(spec: Any) -> Any:
        runner = load_runner(bundle, expected_name="det", expected_version="1", spec=spec)
        return _Lenient(runner) if spec.key == OV.key else runner

    with pytest.raises(RunnerUnavailable) as failed:
        selector.select(
            bundle_digest="d" * 64,
            runtimes=("onnxruntime", "openvino"),
            load=load,
            inputs_for=lambda runner: bundle_input_sets(runner, bundle, count=2),
        )
    message = str(failed.value)
    # the reference's own failure names the inputs and how to give better ones ...
    assert f"{ORT.key}: run failed on inputs x float32[" in message
    assert "bootstrap.npz" in message
    # ... and the candidate that "runs" them is not taken for accurate: nothing to judge it by
    assert f"{OV.key}: not checked: the reference {ORT.key} could not run these inputs" in (message)


@needs_openvino
def test_a_drawn_input_set_the_reference_cannot_run_is_dropped_not_the_reference(
    tmp_path: Path,
) -> None:
    # the bootstrap fits the reshape ([1, 10]), the drawn [1, 16] do not: the reference
    # judges the others on what it runs, and is not replaced by a candidate judged
    # against itself (before: OpenVINO became the reference and was chosen, answering
    # an empty tensor for every input)
    source = reshape_model(tmp_path / "src" / "model.onnx")
    boot = tmp_path / "src" / "bootstrap.npz"
    np.savez(boot, x=np.linspace(-1, 1, 10, dtype=np.float32).reshape(1, 10))
    bundle = tmp_path / "bundle"
    hints = {"x": {"shape": [1, 16]}}  # the drawn sets' shape: 16 values do not fit
    build_bundle(source, bundle, name="det", version="1", extra_files=[boot], input_hints=hints)
    selector = selector_for(tmp_path, OV, ORT)

    def load(spec: Any) -> Any:
        runner = load_runner(bundle, expected_name="det", expected_version="1", spec=spec)
        return _Lenient(runner) if spec.key == OV.key else runner

    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("onnxruntime", "openvino"),
        load=load,
        inputs_for=lambda runner: bundle_input_sets(runner, bundle, count=3),
    )
    figures = {m.key: m for m in selection.measurements}
    assert selection.chosen == ORT.key, figures
    assert figures[ORT.key].excluded is None
    assert figures[OV.key].excluded is not None, figures
    selection.runner.close()
