"""``agent.serving.pipeline``: a pipeline loaded over real ONNX Runtime models served in
``ServedModels``; each wiring refusal is one line naming the pipeline and the step."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.errors import InvalidInput, ModelLoadError, StepUnavailable
from agent.serving import LoadedModel, ServedModels
from agent.serving.pipeline import PipelineRunner, load_pipeline
from model_store import build_bundle, load_metadata
from tests.support.loaded import loaded_model
from tests.support.onnx_models import affine_model, masked_head_model, two_input_model

SPEC: dict[str, Any] = {
    "inputs": [
        {"name": "x", "dtype": "float32", "shape": ["batch", 4]},
        {"name": "ids", "dtype": "int64", "shape": ["batch"]},
        {"name": "mask", "dtype": "bool", "shape": ["batch", 3]},
    ],
    "steps": [
        {"name": "embed", "model": "embed", "version": "1.2",
         "inputs": {"x": "input/x", "ids": "input/ids"}},
        {"name": "head", "model": "head", "version": "1.2",
         "inputs": {"features": "embed/y", "mask": "input/mask"}},
    ],
    "outputs": [{"name": "scores", "dtype": "float32", "shape": ["batch", 3], "from": "head/z"}],
}  # fmt: skip


@pytest.fixture
def models(tmp_path: Path) -> ServedModels:
    served = ServedModels()
    served.activate(loaded_model(tmp_path, two_input_model, "embed"))
    served.activate(loaded_model(tmp_path, masked_head_model, "head"))
    served.activate(loaded_model(tmp_path, affine_model, "affine"))
    return served


def _bundle(tmp_path: Path, spec: dict[str, Any], name: str = "chain") -> Path:
    source = tmp_path / f"src-{name}" / f"{name}.pipeline.json"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(json.dumps(spec))
    out = tmp_path / f"bundle-{name}"
    build_bundle(source, out, name=name, version="1")
    return out


def _load(tmp_path: Path, models: ServedModels, spec: dict[str, Any]) -> PipelineRunner:
    bundle = _bundle(tmp_path, spec)
    return load_pipeline(bundle, load_metadata(bundle), models)


def _inputs() -> dict[str, np.ndarray]:
    return {
        "x": np.ones((2, 4), np.float32),
        "ids": np.array([1, 2], np.int64),
        "mask": np.array([[True, False, True], [False, True, True]]),
    }


def test_runs_its_steps_in_turn(tmp_path: Path, models: ServedModels) -> None:
    runner = _load(tmp_path, models, SPEC)
    assert runner.backend == "pipeline"
    got = runner.infer(_inputs())
    y = models.get("embed").runner.infer({"x": _inputs()["x"], "ids": _inputs()["ids"]})["y"]
    want = models.get("head").runner.infer({"features": y, "mask": _inputs()["mask"]})["z"]
    np.testing.assert_array_equal(got["scores"], want)
    with pytest.raises(InvalidInput, match="missing input 'mask'"):
        runner.infer({"x": _inputs()["x"], "ids": _inputs()["ids"]})


def _edit(change: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    change(spec)
    return spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["steps"][1].update(version="2.0.1"),
            "pipeline chain 1: step head needs model head 2.0.1, which this device does not "
            "serve (it serves head 1.2)",
        ),
        (
            lambda s: s["steps"][1].update(model="cls"),
            "pipeline chain 1: step head needs model cls 1.2, which this device does not serve",
        ),
        (
            lambda s: s["steps"][1]["inputs"].pop("mask"),
            "step head feeds inputs ['features'], but model head 1.2 takes ['features', 'mask']",
        ),
        (
            lambda s: s["steps"][1]["inputs"].update(features="embed/n"),
            "step head input 'features' is float32, but 'embed/n' is int64",
        ),
        (
            lambda s: s["steps"][1]["inputs"].update(features="embed/nope"),
            "step head input 'features' reads 'embed/nope', which that step's model does not",
        ),
        (
            lambda s: s["outputs"][0].update(dtype="int64"),
            "output 'scores' is declared int64, but 'head/z' is float32",
        ),
    ],
)
def test_wiring_that_does_not_fit_the_served_models_is_refused(
    tmp_path: Path, models: ServedModels, change: Any, message: str
) -> None:
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path, models, _edit(change))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_pipelines_do_not_nest(tmp_path: Path, models: ServedModels) -> None:
    inner = _bundle(tmp_path, SPEC, name="inner")
    runner = load_pipeline(inner, load_metadata(inner), models)
    models.activate(LoadedModel("inner", "1", "b" * 64, inner, runner))
    outer = _edit(lambda s: s.update(steps=[s["steps"][0] | {"model": "inner", "version": "1"}]))
    outer["steps"][0]["inputs"] = {n: f"input/{n}" for n in ("x", "ids", "mask")}
    outer["outputs"][0]["from"] = "embed/scores"
    with pytest.raises(ModelLoadError, match="itself a pipeline"):
        _load(tmp_path, models, outer)


def test_a_step_that_leaves_or_changes_version_makes_requests_unavailable(
    tmp_path: Path, models: ServedModels
) -> None:
    runner = _load(tmp_path, models, SPEC)
    models.activate(loaded_model(tmp_path / "v2", masked_head_model, "head", version="2.0"))
    with pytest.raises(StepUnavailable, match=r"step head needs model head 1\.2, but 2\.0 serves"):
        runner.infer(_inputs())
    models.remove("head")
    with pytest.raises(StepUnavailable, match="but it is not served"):
        runner.infer(_inputs())
