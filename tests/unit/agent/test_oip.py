"""Open Inference Protocol conversion: request -> numpy, numpy -> response, metadata."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from agent.errors import InvalidInput
from agent.runners.base import TensorSignature
from agent.serving.oip import decode_request, encode_response, model_metadata
from agent.serving.oip_json import dumps_response

SIGS = [
    TensorSignature("x", np.dtype("float32"), (None, 4)),
    TensorSignature("ids", np.dtype("int64"), (None,)),
]
OUTS = ["y", "n"]


def _body(**overrides: Any) -> dict[str, Any]:
    x = {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}
    ids = {"name": "ids", "shape": [2], "datatype": "INT64", "data": [3, 4]}
    body: dict[str, Any] = {"id": "r1", "inputs": [x, ids]}
    for key, value in overrides.items():
        if key in ("x", "ids"):
            tensor = x if key == "x" else ids
            tensor.update(value)
        else:
            body[key] = value
    return body


def test_decode_builds_typed_arrays() -> None:
    request, inputs = decode_request(_body(), SIGS, OUTS)
    assert request.id == "r1"
    assert inputs["x"].dtype == np.float32 and inputs["x"].shape == (2, 4)
    assert inputs["ids"].dtype == np.int64
    np.testing.assert_array_equal(inputs["x"].ravel(), np.arange(8, dtype=np.float32))


def test_decode_accepts_nested_data() -> None:
    _, inputs = decode_request(_body(x={"data": [[0, 1, 2, 3], [4, 5, 6, 7]]}), SIGS, OUTS)
    assert inputs["x"].shape == (2, 4)


def test_bool_tensor() -> None:
    sig = [TensorSignature("mask", np.dtype("bool"), (None, 2))]
    body = {
        "inputs": [{"name": "mask", "shape": [1, 2], "datatype": "BOOL", "data": [True, False]}]
    }
    _, inputs = decode_request(body, sig, ["y"])
    assert inputs["mask"].dtype == np.bool_
    body["inputs"][0]["data"] = [1, 0]
    with pytest.raises(InvalidInput, match="not BOOL"):
        decode_request(body, sig, ["y"])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_body(x={"name": "z"}), "unknown input 'z'"),
        (_body(x={"datatype": "FP64"}), "datatype FP64, expected FP32"),
        (_body(x={"shape": [2, 5]}), "8 values for shape"),
        (_body(x={"shape": [4, 2]}), "expected \\[\\?, 4\\]"),
        (_body(ids={"data": [1.5, 2.0]}), "not INT64"),
        (_body(ids={"data": ["a", "b"]}), "not INT64"),
        (_body(outputs=[{"name": "nope"}]), "unknown output 'nope'"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"name": "x"}]}, "bad inference request"),
        # no values, but dimensions numpy cannot shape even an empty array with
        (_body(x={"shape": [2**62, 2**62, 0], "data": []}), "is too large"),
        (_body(x={"shape": [0, 2**70], "data": []}), "is too large"),
    ],
)
def test_bad_requests_are_one_line_invalid_input(body: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        decode_request(body, SIGS, OUTS)
    assert "\n" not in str(info.value)


def test_missing_input() -> None:
    body = _body()
    body["inputs"].pop()
    with pytest.raises(InvalidInput, match="missing input 'ids'"):
        decode_request(body, SIGS, OUTS)


def test_encode_response_filters_and_keeps_id() -> None:
    request, _ = decode_request(_body(outputs=[{"name": "n"}]), SIGS, OUTS)
    outputs: dict[str, np.ndarray] = {
        "y": np.ones((2, 3), np.float32),
        "n": np.array([6, 8], np.int64),
    }
    body = encode_response(model_name="m", model_version="1", request=request, outputs=outputs)
    assert json.loads(dumps_response(body)) == {
        "model_name": "m",
        "model_version": "1",
        "id": "r1",
        "outputs": [{"name": "n", "shape": [2], "datatype": "INT64", "data": [6, 8]}],
    }


def test_float32_values_survive_json_exactly() -> None:
    request, _ = decode_request(_body(), SIGS, OUTS)
    y = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    body = encode_response(model_name="m", model_version="1", request=request, outputs={"y": y})
    back = np.asarray(
        json.loads(dumps_response(body))["outputs"][0]["data"], dtype=np.float32
    ).reshape(2, 3)
    np.testing.assert_array_equal(back, y)


def test_model_metadata_marks_dynamic_dims() -> None:
    meta = model_metadata(
        name="m", version="1", platform="onnxruntime_onnx", inputs=SIGS, outputs=SIGS[:1]
    )
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "ids", "datatype": "INT64", "shape": [-1]},
    ]
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"x": {"data": [1e39, *range(7)]}}, "x.*out of range for FP32"),
        ({"x": {"data": [-1e39, *range(7)]}}, "x.*out of range for FP32"),
        ({"ids": {"data": [2**63, 1]}}, "ids.*out of range for INT64"),
        ({"x": {"data": ["nan", *range(7)]}}, "not FP32"),
        ({"x": {"data": ["1.5", *range(7)]}}, "not FP32"),
    ],
)
def test_values_that_do_not_fit_the_datatype_are_refused(
    override: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_request(_body(**override), SIGS, OUTS)


def test_small_integer_types_are_range_checked() -> None:
    sig = [TensorSignature("b", np.dtype("int8"), (None,))]
    body = {"inputs": [{"name": "b", "shape": [2], "datatype": "INT8", "data": [127, -128]}]}
    _, inputs = decode_request(body, sig, [])
    assert inputs["b"].tolist() == [127, -128]
    body["inputs"][0]["data"] = [300, 1]  # would wrap around to 44
    with pytest.raises(InvalidInput, match="out of range for INT8"):
        decode_request(body, sig, [])
    sig = [TensorSignature("u", np.dtype("uint8"), (None,))]
    body = {"inputs": [{"name": "u", "shape": [1], "datatype": "UINT8", "data": [-1]}]}
    with pytest.raises(InvalidInput, match="out of range for UINT8"):
        decode_request(body, sig, [])


def test_named_non_finite_floats_are_accepted() -> None:
    data = ["NaN", "Infinity", "-Infinity", 1, 2.5, 3, 4, 5]
    _, inputs = decode_request(_body(x={"data": data}), SIGS, OUTS)
    x = inputs["x"].ravel()
    assert x.dtype == np.float32 and np.isnan(x[0]) and x[1] == np.inf and x[2] == -np.inf
    assert x[3:].tolist() == [1, 2.5, 3, 4, 5]
