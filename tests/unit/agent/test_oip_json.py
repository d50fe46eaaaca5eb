"""JSON tensor data parsed straight into arrays (agent.serving.oip_json): the same arrays
and the same errors as parsing into Python objects first, on every dtype and shape."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pydantic_core
import pytest

from agent.errors import InvalidInput
from agent.runners.base import TensorSignature
from agent.serving import oip_json
from agent.serving.oip import decode_request, encode_response
from agent.serving.oip_json import JsonNumbers, dumps_response


def loads_request(raw: bytes) -> Any:
    """The fast path whatever the body's size (these bodies are small)."""
    return oip_json.loads_request(raw, fast_from=0)


DTYPES = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


def _raw(data: Any, datatype: str, shape: list[int], **extra: Any) -> bytes:
    tensor = {"name": "x", "shape": shape, "datatype": datatype, "data": data}
    return json.dumps({"id": "r", "inputs": [tensor], **extra}).encode()


def _decode(body: Any, datatype: str) -> np.ndarray:
    sig = TensorSignature("x", np.dtype(DTYPES[datatype]), None)
    return decode_request(body, [sig], ["y"])[1]["x"]


def _both(raw: bytes, datatype: str) -> tuple[Any, Any]:
    """(fast result or error text, slow result or error text)."""
    out: list[Any] = []
    for load in (loads_request, lambda r: pydantic_core.from_json(r, allow_inf_nan=False)):
        try:
            out.append(_decode(load(raw), datatype))
        except (InvalidInput, ValueError) as exc:
            out.append(str(exc))
    return out[0], out[1]


def _values(datatype: str, count: int) -> np.ndarray:
    rng = np.random.default_rng(count)
    dtype = np.dtype(DTYPES[datatype])
    if dtype.kind == "f":
        return rng.standard_normal(count).astype(dtype) * 1000
    if dtype.kind == "b":
        return rng.integers(0, 2, count).astype(bool)
    info = np.iinfo(dtype)
    high = min(int(info.max), 2**63 - 1)  # the Python path refuses UINT64 past 2**63
    return rng.integers(info.min, high, count, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("datatype", sorted(DTYPES))
@pytest.mark.parametrize("shape", [[0], [1], [5], [2, 3], [1, 3, 2, 2], [4, 0, 2]])
@pytest.mark.parametrize("nested", [False, True])
def test_same_arrays_as_the_python_objects_path(
    datatype: str, shape: list[int], nested: bool
) -> None:
    values = _values(datatype, math.prod(shape)).reshape(shape)
    data = values.tolist() if nested else values.reshape(-1).tolist()
    raw = _raw(data, datatype, shape)
    fast, slow = _both(raw, datatype)
    np.testing.assert_array_equal(fast, slow)
    assert fast.dtype == slow.dtype == values.dtype and fast.shape == tuple(shape)
    np.testing.assert_array_equal(fast, values)
    taken = isinstance(loads_request(raw)["inputs"][0]["data"], JsonNumbers)
    # BOOL stays on the Python path; so does nested data of a tensor without values
    flat = not nested or len(shape) == 1
    assert taken == (datatype != "BOOL" and (flat or math.prod(shape) > 0))


def test_a_real_image_is_parsed_without_python_numbers() -> None:
    image = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for data in (image.ravel().tolist(), image.tolist()):
        body = loads_request(_raw(data, "FP32", [1, 3, 32, 32]))
        numbers = body["inputs"][0]["data"]
        assert isinstance(numbers, JsonNumbers) and numbers.values.dtype == np.float64
        np.testing.assert_array_equal(_decode(body, "FP32"), image)


@pytest.mark.parametrize(
    ("data", "datatype", "shape"),
    [
        ([1.5, "NaN", "Infinity", "-Infinity"], "FP32", [4]),  # named non-finite floats
        ([1e39, 0], "FP32", [2]),  # out of range for FP32
        ([70000, 0], "FP16", [2]),
        ([300, 1], "UINT8", [2]),
        ([-1, 1], "UINT8", [2]),
        ([-129, 1], "INT8", [2]),
        ([2**63, 1], "INT64", [2]),
        ([-1, 1], "UINT64", [2]),
        ([1.5, 2], "INT32", [2]),  # a float in an integer tensor
        ([True, 2], "INT32", [2]),
        ([True, 2.0], "FP32", [2]),
        (["a", 2.0], "FP32", [2]),
        ([None, 2.0], "FP32", [2]),
        ([{"a": 1}, 2.0], "FP32", [2]),
        ([1, 2, 3], "FP32", [2, 2]),  # too few values
        ([1, 2, 3, 4, 5], "FP32", [2, 2]),
        ([[1, 2, 3], [4]], "FP32", [2, 2]),  # ragged
        ([[1, 2], [3]], "FP32", [3]),
        ([[1], 2], "FP32", [2]),  # a leaf hidden in a nested array
        ([[1, 2]] * 39 + [[[1], 2]], "FP32", [40, 2]),  # one past the [ found one by one
        ([[1, 2], [[3], 4]], "FP32", [2, 2]),
        ([[[1, 2]], [[3, 4]]], "FP32", [2, 2]),  # deeper than the shape
        ([[1, 2], []], "FP32", [2, 2]),
        ([1, 2, 3, 4], "FP32", [-2, -2]),
        ([], "FP32", [0]),
    ],
)
def test_odd_and_bad_data_answer_as_before(
    data: list[Any], datatype: str, shape: list[int]
) -> None:
    fast, slow = _both(_raw(data, datatype, shape), datatype)
    if isinstance(slow, str):
        assert fast == slow
    else:
        np.testing.assert_array_equal(fast, slow)
        assert fast.dtype == slow.dtype


@pytest.mark.parametrize(
    "raw",
    [
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, NaN]}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2,]}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}',
        b"\xff",
        b"",
    ],
)
def test_not_json_is_the_same_one_line_error(raw: bytes) -> None:
    with pytest.raises(InvalidInput) as fast:
        _decode(loads_request(raw), "FP32")
    try:
        slow = _decode(pydantic_core.from_json(raw, allow_inf_nan=False), "FP32")
    except ValueError as exc:
        assert str(fast.value) == f"request body is not JSON: {exc}"
    else:
        pytest.fail(f"the slow path took {raw!r}: {slow}")
    assert "\n" not in str(fast.value)


@pytest.mark.parametrize(
    "raw",
    [
        # escapes, brackets in strings, keys repeated: the rest of the body as before
        b'{"id": "a\\"[b", "inputs": [{"name": "x", "shape": [2], "datatype": "FP32",'
        b' "data": [1, 2]}]}',
        b'{"id": "[[[", "inputs": [{"name": "x", "shape": [2], "datatype": "FP32",'
        b' "data": [1, 2], "parameters": {"k[": ["]"]}}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [9, 9],'
        b' "data": [1, 2]}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [[1], 2],'
        b' "data": [1, 2]}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": null,'
        b' "data": [1, 2]}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2],'
        b' "data": null}]}',
        b'{"inputs": [7]}',
        # not a double: simdjson refuses it, pydantic-core reads infinity
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1e400]}]}',
        b'{"inputs": {"name": "x"}}',
        b"[1, 2]",
        b'{"inputs": [{"name": "x", "shape": "2", "datatype": "FP32", "data": [1, 2]}]}',
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": 32, "data": [1, 2]}]}',
    ],
)
def test_the_rest_of_the_body_is_as_before(raw: bytes) -> None:
    fast, slow = _both(raw, "FP32")
    if isinstance(slow, str):
        assert fast == slow
    else:
        np.testing.assert_array_equal(fast, slow)


def test_uint64_takes_its_whole_range() -> None:
    # the Python path refuses values past 2**63 (numpy makes them float64); these do not
    body = loads_request(_raw([2**64 - 1, 2**63, 0], "UINT64", [3]))
    assert _decode(body, "UINT64").tolist() == [2**64 - 1, 2**63, 0]
    with pytest.raises(InvalidInput, match="out of range for UINT64"):
        _decode(loads_request(_raw([2**64, 0], "UINT64", [2])), "UINT64")


def test_small_bodies_keep_the_python_path() -> None:
    raw = _raw([1.0, 2.0], "FP32", [2])
    assert oip_json.loads_request(raw)["inputs"][0]["data"] == [1.0, 2.0]
    big = _raw(list(range(3000)), "INT64", [3000])
    assert isinstance(oip_json.loads_request(big)["inputs"][0]["data"], JsonNumbers)


def test_parsers_are_reused_safely_across_requests() -> None:
    raw = _raw([1.0, 2.0], "FP32", [2])
    held = loads_request(raw)
    for _ in range(3):
        assert _decode(loads_request(raw), "FP32").tolist() == [1.0, 2.0]
    assert _decode(held, "FP32").tolist() == [1.0, 2.0]
    assert len(oip_json._parsers) <= oip_json.KEEP_PARSERS


def test_a_parser_whose_document_is_still_referenced_is_not_reused() -> None:
    parser = oip_json._take_parser()
    leaked = parser.parse(b'{"a": [1, 2]}')  # as a traceback could keep one alive
    oip_json._give_back(parser)
    assert _decode(loads_request(_raw([1.0, 2.0], "FP32", [2])), "FP32").tolist() == [1.0, 2.0]
    with pytest.raises(InvalidInput, match="request body is not JSON"):
        loads_request(b'{"inputs": [' + b" " * 100)
    assert leaked["a"].as_list() == [1, 2]


def _encoded(array: np.ndarray) -> Any:
    sig = TensorSignature("x", np.dtype(np.float32), None)
    request, _ = decode_request(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}, [sig], ["y"]
    )
    body = encode_response(model_name="m", model_version="1", request=request, outputs={"y": array})
    return json.loads(dumps_response(body))["outputs"][0]


@pytest.mark.parametrize("datatype", sorted(DTYPES))
def test_outputs_read_back_to_the_same_values(datatype: str) -> None:
    array = _values(datatype, 24).reshape(2, 3, 4)
    out = _encoded(array)
    assert out["datatype"] == datatype and out["shape"] == [2, 3, 4]
    back = np.asarray(out["data"], dtype=array.dtype).reshape(out["shape"])
    np.testing.assert_array_equal(back, array)


def test_non_finite_outputs_are_the_documented_strings() -> None:
    array = np.array([1.5, np.nan, np.inf, -np.inf], np.float32)
    assert _encoded(array)["data"] == [1.5, "NaN", "Infinity", "-Infinity"]


def test_bytes_outputs_are_strings() -> None:
    assert _encoded(np.array(["a", "bc"], dtype=object))["data"] == ["a", "bc"]
    assert _encoded(np.array([b"a", b"bc"], dtype=object))["data"] == ["a", "bc"]
