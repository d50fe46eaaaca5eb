"""ORT runner outputs equal a direct onnxruntime run; warm-up inputs; the plugin registry."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import agent.runners as runners
from agent.errors import InvalidInput, ModelLoadError, RunnerUnavailable
from agent.runners.base import TensorSignature
from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.runners.warmup import warm_up, warmup_inputs
from model_store import BundleMetadata, TensorSpec, build_bundle, load_metadata
from tests.support.onnx_models import bool_input_model, two_input_model


def _bundle(tmp_path: Path, build: Any, name: str) -> tuple[Path, Any]:
    src = build(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    build_bundle(src, out, name=name, version="1")
    return out, load_metadata(out)


def _direct(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _loaded(tmp_path: Path, build: Any, name: str) -> tuple[OnnxRuntimeRunner, Path]:
    bundle, meta = _bundle(tmp_path, build, name)
    runner = OnnxRuntimeRunner()
    runner.load(bundle, meta)
    return runner, bundle / meta.model_file


def test_two_input_model_matches_direct_run(tmp_path: Path) -> None:
    runner, model = _loaded(tmp_path, two_input_model, "two")
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "ids": np.array([1, 5, 9])}
    got, want = runner.infer(feeds), _direct(model, feeds)
    assert set(got) == {"y", "n"}
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


def test_bool_model_matches_direct_run(tmp_path: Path) -> None:
    runner, model = _loaded(tmp_path, bool_input_model, "masked")
    feeds = {
        "x": np.arange(6, dtype=np.float32).reshape(3, 2),
        "mask": np.array([[True, False], [False, True], [True, True]]),
    }
    np.testing.assert_array_equal(runner.infer(feeds)["y"], _direct(model, feeds)["y"])


def test_bad_inputs_are_invalid_input(tmp_path: Path) -> None:
    runner, _ = _loaded(tmp_path, two_input_model, "two")
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(InvalidInput, match="dtype int32"):
        runner.infer({"x": x, "ids": np.zeros(2, np.int32)})
    with pytest.raises(InvalidInput, match="missing input 'ids'"):
        runner.infer({"x": x})
    with pytest.raises(InvalidInput, match="unknown input 'z'"):
        runner.infer({"x": x, "ids": np.zeros(2, np.int64), "z": x})
    with pytest.raises(InvalidInput, match="shape"):
        runner.infer({"x": np.zeros((2, 5), np.float32), "ids": np.zeros(2, np.int64)})
    # as many inputs as declared, one of them unknown (ONNX Runtime refuses it first)
    with pytest.raises(InvalidInput, match="unknown input 'z'"):
        runner.infer({"x": x, "z": np.zeros(2, np.int64)})
    with pytest.raises(InvalidInput, match="rank 3, expected 2"):
        runner.infer({"x": np.zeros((2, 4, 1), np.float32), "ids": np.zeros(2, np.int64)})
    with pytest.raises(InvalidInput, match="expected a numpy array, not str"):
        runner.infer({"x": "abc", "ids": np.zeros(1, np.int64)})  # type: ignore[dict-item]


def test_metadata_that_lies_about_inputs_is_refused(tmp_path: Path) -> None:
    bundle, meta = _bundle(tmp_path, two_input_model, "two")
    lying = meta.model_copy(update={"inputs": meta.inputs[:1]})
    with pytest.raises(ModelLoadError, match="declared inputs"):
        OnnxRuntimeRunner().load(bundle, lying)


def test_warmup_inputs_for_dynamic_int_and_bool() -> None:
    sigs = [
        TensorSignature("x", np.dtype("float32"), (None, 4)),
        TensorSignature("ids", np.dtype("int64"), (None,)),
        TensorSignature("mask", np.dtype("bool"), (None, 2)),
        TensorSignature("any", np.dtype("float16"), None),
    ]
    inputs = warmup_inputs(sigs)  # agent.runners.inputs defaults: batch 1, sequences 16
    assert inputs["x"].shape == (1, 4) and inputs["x"].dtype == np.float32
    assert inputs["x"].min() >= 0 and inputs["x"].max() < 1
    assert inputs["ids"].shape == (1,) and inputs["ids"].dtype == np.int64  # x's batch
    assert inputs["ids"].min() >= 0 and inputs["ids"].max() < 100
    assert inputs["mask"].dtype == np.bool_ and inputs["mask"].shape == (1, 2)
    assert inputs["mask"].all()
    assert inputs["any"].shape == (16,)


def test_warm_up_runs_the_model(tmp_path: Path) -> None:
    runner, _ = _loaded(tmp_path, bool_input_model, "masked")
    assert warm_up(runner, iterations=2) >= 0


def test_registry_has_onnxruntime_and_skips_a_plugin_without_its_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "fancy.py").write_text("import edgefleet_no_such_sdk  # noqa\n")
    monkeypatch.setattr(runners.plugins, "__path__", [*runners.plugins.__path__, str(plugins)])
    monkeypatch.setattr(runners, "_discovered", False)
    monkeypatch.setattr(runners, "_SKIPPED", {})
    monkeypatch.delitem(sys.modules, "agent.runners.plugins.fancy", raising=False)
    with caplog.at_level(logging.INFO, logger="agent.runners"):
        available = runners.available_runners()
    assert "onnxruntime" in available
    assert "fancy" in runners.skipped_plugins()
    assert any("fancy skipped" in r.getMessage() for r in caplog.records)
    assert isinstance(runners.create_runner(), OnnxRuntimeRunner)
    with pytest.raises(RunnerUnavailable):
        runners.create_runner("tensorrt")


def test_the_default_runner_reports_its_candidate_key(tmp_path: Path) -> None:
    runner, _ = _loaded(tmp_path, two_input_model, "two")
    assert runner.spec == runners.CandidateSpec("onnxruntime", "CPUExecutionProvider", "f32")
    assert runner.backend == "onnxruntime:CPUExecutionProvider:f32"
    assert runner.platform == "onnxruntime_onnx"
    assert runner.session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "missing.bin"])
def test_external_data_outside_the_bundle_is_refused_before_onnxruntime_sees_it(
    tmp_path: Path, location: str
) -> None:
    """Even a correctly signed model may name external data outside its bundle; the
    runner refuses it itself rather than rely on the ONNX Runtime version to."""
    import onnx
    from onnx import TensorProto, helper

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(bundle / "model.onnx"))
    metadata = BundleMetadata(
        name="m",
        version="1",
        model_file="model.onnx",
        inputs=[TensorSpec(name="x", dtype="float32", shape=[4])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[4])],
    )
    with pytest.raises(ModelLoadError, match="external data") as info:
        OnnxRuntimeRunner().load(bundle, metadata)
    assert "onnxruntime" not in str(info.value)  # refused before ONNX Runtime saw it
