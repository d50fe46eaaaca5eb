"""Representative inputs (``agent.runners.inputs``) and the health gate on models that, like
published ones, refuse degenerate inputs (issue 18: reflect pad, 3x3 conv, sample rate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.deployment.gate import (
    BOOTSTRAP_FILENAME,
    bootstrap_inputs,
    bundle_input_sets,
    health_gate,
)
from agent.errors import AgentError, HealthGateFailed
from agent.runners.base import TensorSignature
from agent.runners.inputs import input_sets, input_shapes
from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from model_store import InputHint, build_bundle, load_metadata
from tests.support.awkward_models import conv_model, reflect_pad_model, sample_rate_model


def _sig(name: str, dtype: str, shape: tuple[int | None, ...] | None) -> TensorSignature:
    return TensorSignature(name, np.dtype(dtype), shape)


def _runner(tmp_path: Path, build: Any, **bundle: Any) -> tuple[OnnxRuntimeRunner, Path]:
    src = build(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    build_bundle(src, out, name="m", version="1", **bundle)
    runner = OnnxRuntimeRunner()
    runner.load(out, load_metadata(out))
    return runner, out


def test_default_shapes_by_rank_layout_and_name() -> None:
    shapes = input_shapes(
        [
            _sig("nchw", "float32", (None, 3, None, None)),
            _sig("nhwc", "float32", (None, None, None, 3)),
            _sig("anon", "float32", (None, None, None, None)),
            _sig("seq", "float32", (None, None, 8)),
            _sig("ids", "int64", (None,)),
            _sig("lengths", "int64", (None,)),
            _sig("any", "float32", None),
        ],
        dim_names={"ids": ["batch"]},
    )
    assert shapes["nchw"] == (1, 3, 224, 224)
    assert shapes["nhwc"] == (1, 224, 224, 3)
    assert shapes["anon"] == (1, 3, 224, 224)
    assert shapes["seq"] == (1, 16, 8)
    assert shapes["ids"] == (1,)  # named like a batch
    assert shapes["lengths"] == (1,)  # a per-item value of the other inputs' batch
    assert shapes["any"] == (16,)
    alone = input_shapes([_sig("audio", "float32", (None,)), _sig("sr", "int64", ())])
    assert alone == {"audio": (16,), "sr": ()}  # no batch anywhere: a sequence
    # "n" alone is no batch: a vector of n samples (as ``edgectl push`` judges it too)
    named = input_shapes(
        [_sig("x", "float32", (None,)), _sig("sr", "int64", ())], dim_names={"x": ["n"]}
    )
    assert named == {"x": (16,), "sr": ()}
    features = input_shapes([_sig("f", "float32", (None, None))], dim_names={"f": ["N", "n"]})
    assert features == {"f": (1, 16)}  # first by position (a batch), then a length


def test_a_shared_dimension_name_gets_one_size_and_hinted_shapes_bind_it() -> None:
    sigs = [_sig("audio", "float32", (None, None)), _sig("state", "float32", (2, None, 4))]
    names = {"audio": ["b", "samples"], "state": [None, "b", None]}
    assert input_shapes(sigs, dim_names=names)["state"] == (2, 1, 4)
    hinted = input_shapes(sigs, dim_names=names, hints={"audio": InputHint(shape=[3, 512])})
    assert hinted == {"audio": (3, 512), "state": (2, 3, 4)}


def test_default_values_sample_rate_masks_tokens_and_booleans() -> None:
    sigs = [
        _sig("sr", "int64", ()),
        _sig("attention_mask", "int64", (None, None)),
        _sig("input_ids", "int64", (None, None)),
        _sig("keep", "bool", (None,)),
        _sig("x", "float16", (None, 4)),
        _sig("image", "uint8", (None, None, None, 3)),
    ]
    (one,) = input_sets(sigs)
    assert one["image"].shape == (1, 224, 224, 3) and one["image"].max() > 200
    assert one["sr"].shape == () and int(one["sr"]) == 16000
    assert one["attention_mask"].shape == (1, 16) and (one["attention_mask"] == 1).all()
    assert one["input_ids"].min() >= 0 and one["input_ids"].max() < 100
    assert one["keep"].all() and one["x"].dtype == np.float16
    assert all(a.size > 0 for a in one.values())


def test_hints_give_ranges_and_values_and_each_set_its_own_seed() -> None:
    sigs = [_sig("px", "float32", (None, 2)), _sig("rate", "int64", ()), _sig("t", "int32", (5,))]
    hints = {
        "px": InputHint(range=(10.0, 20.0)),
        "rate": InputHint(values=[8000, 16000]),
        "t": InputHint(range=(3, 4)),
    }
    sets = input_sets(sigs, count=3, hints=hints)
    assert len(sets) == 3
    assert [int(s["rate"]) for s in sets] == [8000, 16000, 8000]
    for s in sets:
        assert s["px"].min() >= 10 and s["px"].max() <= 20
        assert set(s["t"].tolist()) <= {3, 4} and s["t"].dtype == np.int32
    assert not np.array_equal(sets[0]["px"], sets[1]["px"])


def test_a_bootstrap_comes_first_and_the_others_follow_its_shapes_and_ranges() -> None:
    sigs = [_sig("x", "float32", (None, None)), _sig("ids", "int64", (None,))]
    boot = {"x": np.full((2, 7), 5.0, np.float32), "ids": np.array([4, 2], np.int64)}
    boot["x"][0, 0] = 6.0
    sets = input_sets(sigs, count=3, bootstrap=boot)
    assert sets[0] is not boot and np.array_equal(sets[0]["x"], boot["x"])
    for s in sets[1:]:
        assert s["x"].shape == (2, 7) and s["x"].min() >= 5.0 and s["x"].max() <= 6.0
        assert np.array_equal(s["ids"], boot["ids"])


def test_a_reflect_pad_model_runs_on_the_generated_input_not_on_a_1_wide_one(
    tmp_path: Path,
) -> None:
    runner, bundle = _runner(tmp_path, reflect_pad_model)
    with pytest.raises(AgentError):  # what the old all-ones shapes gave the voice model
        runner.infer({"x": np.zeros((1, 1), np.float32)})
    (inputs,) = bundle_input_sets(runner, bundle)
    assert inputs["x"].shape == (1, 16)
    assert health_gate(runner, bundle, runs=1) > 0


def test_a_conv_model_gets_image_sized_inputs(tmp_path: Path) -> None:
    runner, bundle = _runner(tmp_path, conv_model)
    with pytest.raises(AgentError):  # a 1x1 image is smaller than the 3x3 kernel
        runner.infer({"x": np.zeros((1, 1, 1, 1), np.float32)})
    (inputs,) = bundle_input_sets(runner, bundle)
    assert inputs["x"].shape == (1, 1, 224, 224)
    assert health_gate(runner, bundle, runs=1) > 0


def test_an_int64_sample_rate_scalar_gets_a_real_rate(tmp_path: Path) -> None:
    runner, bundle = _runner(tmp_path, sample_rate_model)
    out = runner.infer({"x": np.ones((1, 4), np.float32), "sr": np.array(0, np.int64)})
    assert np.isnan(out["y"]).all()  # a rate of 0 (the old default) makes it NaN
    assert health_gate(runner, bundle, runs=1) > 0


def test_a_gate_failure_on_generated_inputs_names_them_and_how_to_do_better(
    tmp_path: Path,
) -> None:
    runner, bundle = _runner(tmp_path, lambda p: sample_rate_model(p, rate_name="rate_code"))
    with pytest.raises(HealthGateFailed) as caught:
        health_gate(runner, bundle, runs=1)
    message = str(caught.value)
    assert "\n" not in message and "not finite" in message
    assert "rate_code int64[]" in message and "x float32[1,16]" in message
    assert BOOTSTRAP_FILENAME in message and "--input-value" in message


def test_hinted_values_make_that_model_pass(tmp_path: Path) -> None:
    hints = {"rate_code": {"values": [8000]}, "x": {"shape": [2, 320]}}
    runner, bundle = _runner(
        tmp_path, lambda p: sample_rate_model(p, rate_name="rate_code"), input_hints=hints
    )
    sets = bundle_input_sets(runner, bundle, count=4)
    assert [s["x"].shape for s in sets] == [(2, 320)] * 4
    gate_input = bootstrap_inputs(runner, bundle)  # the gate runs selection's timing input
    assert all(np.array_equal(gate_input[k], v) for k, v in sets[0].items())
    assert health_gate(runner, bundle, runs=1) > 0
