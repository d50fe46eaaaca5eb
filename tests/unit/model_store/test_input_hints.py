"""Input hints in ``edgefleet.json`` (``model_store.input_hints``): shapes, ranges and
values of real inputs, validated strictly against the model and signed with the bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model_store import (
    METADATA_FILENAME,
    BundleError,
    BundleSelection,
    InputHint,
    build_bundle,
    load_metadata,
    parse_metadata,
)
from tests.support.awkward_models import sample_rate_model
from tests.support.onnx_models import bool_input_model, two_input_model


def test_hints_and_topk_are_written_and_read_back(tmp_path: Path) -> None:
    model = sample_rate_model(tmp_path / "vad.onnx")
    hints = {"x": {"shape": [1, 512], "range": [-1, 1]}, "sr": {"values": [8000, 16000]}}
    meta = build_bundle(
        model, tmp_path / "b", name="vad", version="1", input_hints=hints, selection={"topk": 3}
    )
    assert meta.input_hints == {
        "x": InputHint(shape=[1, 512], range=(-1, 1)),
        "sr": InputHint(values=[8000, 16000]),
    }
    assert meta.selection == BundleSelection(topk=3)
    assert load_metadata(tmp_path / "b") == meta
    data = json.loads((tmp_path / "b" / METADATA_FILENAME).read_text())
    assert data["input_hints"]["sr"] == {"values": [8000, 16000]}


def test_a_bundle_without_hints_has_no_section(tmp_path: Path) -> None:
    build_bundle(two_input_model(tmp_path / "m.onnx"), tmp_path / "b", name="m", version="1")
    assert "input_hints" not in json.loads((tmp_path / "b" / METADATA_FILENAME).read_text())
    assert load_metadata(tmp_path / "b").input_hints is None


@pytest.mark.parametrize(
    ("hints", "error"),
    [
        ({"nope": {"shape": [1, 4]}}, "input hint for 'nope': the model's inputs are"),
        ({"x": {"shape": [1, 4, 1]}}, "has rank 3, the model's"),
        ({"x": {"shape": [2, 5]}}, "does not keep the model's fixed dimensions"),
        ({"x": {"shape": [0, 4]}}, "greater than or equal to 1"),
        ({"x": {"range": [1, 1]}}, "low < high"),
        ({"x": {"range": [0, 1], "values": [1]}}, "a range or values, not both"),
        ({"x": {}}, "give a shape, a range or values"),
        ({"x": {"scale": 2}}, "Extra inputs are not permitted"),
        ({"ids": {"values": [1.5]}}, "an integer input (int64) takes integers"),
        ({"x": {"values": ["a"]}}, "input hint for 'x'"),
    ],
)
def test_bad_hints_are_one_line_errors(tmp_path: Path, hints: dict[str, Any], error: str) -> None:
    with pytest.raises(BundleError) as caught:
        build_bundle(
            two_input_model(tmp_path / "m.onnx"),
            tmp_path / "b",
            name="m",
            version="1",
            input_hints=hints,
        )
    assert error in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "b").exists()


def test_a_boolean_input_takes_a_shape_only(tmp_path: Path) -> None:
    model = bool_input_model(tmp_path / "m.onnx")
    with pytest.raises(BundleError, match=r"boolean or string input \(bool\) takes a shape only"):
        build_bundle(
            model, tmp_path / "b", name="m", version="1", input_hints={"mask": {"values": [1]}}
        )
    meta = build_bundle(
        model, tmp_path / "b", name="m", version="1", input_hints={"mask": {"shape": [3, 2]}}
    )
    assert meta.input_hints == {"mask": InputHint(shape=[3, 2])}


def test_a_hint_that_does_not_fit_is_refused_when_read(tmp_path: Path) -> None:
    build_bundle(two_input_model(tmp_path / "m.onnx"), tmp_path / "b", name="m", version="1")
    data = json.loads((tmp_path / "b" / METADATA_FILENAME).read_text())
    data["input_hints"] = {"x": {"shape": [1, 5]}}
    with pytest.raises(BundleError, match=r"malformed: .*fixed dimensions"):
        parse_metadata(json.dumps(data).encode())
