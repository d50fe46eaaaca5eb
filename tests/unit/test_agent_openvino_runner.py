"""OpenVINO runner: IR and ONNX bundles give onnxruntime's outputs; runner choice; errors."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import agent.runners as runners
from agent.errors import InferenceError, InvalidInput, ModelLoadError, RunnerUnavailable
from agent.runners.choice import candidate_runners, runner_for
from agent.runners.onnxruntime import OnnxRuntimeRunner
from agent.runners.openvino import COMPILE_CONFIG, OpenVinoRunner
from agent.warmup import warm_up
from model_store import build_bundle, load_metadata
from model_store.metadata import BundleMetadata
from tests.support.onnx_models import bool_input_model, external_data_model
from tests.support.openvino_models import ir_from_onnx, two_input_ir


def _ort(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _ir_runner(tmp_path: Path) -> tuple[OpenVinoRunner, Path, BundleMetadata]:
    xml, onnx_path = two_input_ir(tmp_path / "src" / "model.xml", weight=0.37)
    build_bundle(xml, tmp_path / "bundle", name="two", version="1")
    meta = load_metadata(tmp_path / "bundle")
    runner = OpenVinoRunner()
    runner.load(tmp_path / "bundle", meta)
    return runner, onnx_path, meta


def _feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((batch, 4)).astype(np.float32),
        "ids": rng.integers(-50, 50, size=batch, dtype=np.int64),
    }


def _assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype, name
        assert got[name].shape == expected.shape, name
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_ir_outputs_equal_onnxruntime_on_the_source_onnx(tmp_path: Path, batch: int) -> None:
    runner, onnx_path, _ = _ir_runner(tmp_path)
    feeds = _feeds(batch, seed=batch)
    _assert_close(runner.infer(feeds), _ort(onnx_path, feeds))


def test_compiled_for_cpu_in_f32_with_a_latency_hint(tmp_path: Path) -> None:
    runner, _, _ = _ir_runner(tmp_path)
    assert COMPILE_CONFIG == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    assert runner.inference_precision == "f32"
    assert (runner.key, runner.backend, runner.platform) == ("openvino", "openvino-cpu", "openvino")
    runner.close()
    assert runner.inference_precision == ""


def test_onnx_bundle_with_external_data_runs_on_both_runners(tmp_path: Path) -> None:
    model = external_data_model(tmp_path / "src" / "m.onnx", location="data/m.data")
    build_bundle(model, tmp_path / "bundle", name="m", version="1")
    meta = load_metadata(tmp_path / "bundle")
    feeds = _feeds(5)
    want = _ort(model, feeds)
    for runner in (OpenVinoRunner(), OnnxRuntimeRunner()):
        runner.load(tmp_path / "bundle", meta)
        _assert_close(runner.infer(feeds), want)


def test_bool_ir_matches_onnxruntime(tmp_path: Path) -> None:
    onnx_path = bool_input_model(tmp_path / "onnx" / "masked.onnx")
    xml = ir_from_onnx(onnx_path, tmp_path / "src" / "masked.xml")
    build_bundle(xml, tmp_path / "bundle", name="masked", version="1")
    runner = OpenVinoRunner()
    runner.load(tmp_path / "bundle", load_metadata(tmp_path / "bundle"))
    feeds = {
        "x": np.arange(6, dtype=np.float32).reshape(3, 2),
        "mask": np.array([[True, False], [False, True], [True, True]]),
    }
    _assert_close(runner.infer(feeds), _ort(onnx_path, feeds))
    assert warm_up(runner, iterations=2) >= 0


def test_concurrent_calls_each_get_their_own_result(tmp_path: Path) -> None:
    runner, onnx_path, _ = _ir_runner(tmp_path)
    cases = [_feeds(1 + i % 5, seed=i) for i in range(48)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(runner.infer, cases))
    for feeds, got in zip(cases, results, strict=True):
        _assert_close(got, _ort(onnx_path, feeds))


def test_bad_inputs_and_backend_failures(tmp_path: Path) -> None:
    runner, _, _ = _ir_runner(tmp_path)
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(InvalidInput, match="dtype int32"):
        runner.infer({"x": x, "ids": np.zeros(2, np.int32)})
    with pytest.raises(InvalidInput, match="missing input 'ids'"):
        runner.infer({"x": x})
    with pytest.raises(InvalidInput, match="shape"):
        runner.infer({"x": np.zeros((2, 5), np.float32), "ids": np.zeros(2, np.int64)})
    with pytest.raises(InferenceError, match=r"^openvino: ") as info:  # batch 2 vs batch 3
        runner.infer({"x": x, "ids": np.zeros(3, np.int64)})
    assert "\n" not in str(info.value)
    runner.close()
    runner.close()
    with pytest.raises(InferenceError, match="not loaded"):
        runner.infer(_feeds(1))


def test_metadata_that_lies_or_a_broken_model_is_a_load_error(tmp_path: Path) -> None:
    _, _, meta = _ir_runner(tmp_path)
    bundle = tmp_path / "bundle"
    with pytest.raises(ModelLoadError, match="declared inputs"):
        OpenVinoRunner().load(bundle, meta.model_copy(update={"inputs": meta.inputs[:1]}))
    renamed = meta.outputs[0].model_copy(update={"name": "zz"})
    with pytest.raises(ModelLoadError, match="declared output 'zz'"):
        OpenVinoRunner().load(bundle, meta.model_copy(update={"outputs": [renamed]}))
    (bundle / "model.bin").write_bytes(b"\0" * 4)
    with pytest.raises(ModelLoadError, match=r"^openvino cannot load model\.xml: ") as info:
        OpenVinoRunner().load(bundle, meta)
    assert "\n" not in str(info.value)


def _meta(framework: str, runtimes: list[str] | None = None) -> BundleMetadata:
    model_file = "m.xml" if framework == "openvino" else "m.onnx"
    constraints: dict[str, Any] | None = None if runtimes is None else {"runtimes": runtimes}
    return BundleMetadata(
        name="m",
        version="1",
        framework=framework,
        model_file=model_file,
        inputs=[],
        outputs=[],
        constraints=constraints,  # type: ignore[arg-type]
    )


def test_runner_for_follows_framework_and_constraints() -> None:
    both = ["onnxruntime", "openvino"]
    assert runner_for(_meta("onnx"), both) == "onnxruntime"
    assert runner_for(_meta("onnx"), ["openvino"]) == "openvino"
    assert runner_for(_meta("openvino"), both) == "openvino"
    assert runner_for(_meta("onnx", ["openvino"]), both) == "openvino"
    assert candidate_runners(_meta("openvino", ["onnxruntime"])) == ()
    with pytest.raises(RunnerUnavailable, match="needs runtime 'openvino'"):
        runner_for(_meta("openvino"), ["onnxruntime"])
    with pytest.raises(RunnerUnavailable, match="framework 'tflite' is not supported"):
        runner_for(_meta("tflite"), both)
    assert runner_for(_meta("openvino")) == "openvino"  # the plugins that loaded here


def test_registry_lists_openvino_and_survives_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "openvino" in runners.available_runners()
    assert isinstance(runners.create_runner("openvino"), OpenVinoRunner)
    monkeypatch.setattr(runners, "_discovered", False)
    monkeypatch.setattr(runners, "_REGISTRY", {})
    monkeypatch.setattr(runners, "_SKIPPED", {})
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.delitem(sys.modules, "agent.runners.openvino")
    monkeypatch.delitem(sys.modules, "agent.runners.onnxruntime")
    available = runners.available_runners()
    assert "onnxruntime" in available and "openvino" not in available
    assert "openvino" in runners.skipped_plugins()
