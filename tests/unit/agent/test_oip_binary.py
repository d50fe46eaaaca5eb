"""The binary tensor data extension on buffers: zero-copy decoding, every size checked
against shape and datatype, binary outputs, BOOL and BYTES layouts."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from agent.errors import InvalidInput
from agent.runners.base import TensorSignature
from agent.serving import oip_binary
from agent.serving.oip import decode_request, encode_response
from agent.serving.oip_json import dumps_response

SIGS = [
    TensorSignature("x", np.dtype("float32"), (None, 4)),
    TensorSignature("ids", np.dtype("int64"), (None,)),
]
OUTS = ["y", "n"]


def _body(
    inputs: list[dict[str, Any]], blobs: list[bytes], **extra: Any
) -> tuple[dict[str, Any], memoryview | None]:
    """(parsed JSON header, binary part in an aligned body buffer like the server's)."""
    header = json.dumps({"inputs": inputs, **extra}).encode()
    data = b"".join(blobs)
    body = oip_binary.aligned_body(str(len(header)), len(header) + len(data))
    body[: len(header)] = header
    body[len(header) :] = data
    parsed, binary = oip_binary.split_body(body, str(len(header)))
    return json.loads(bytes(parsed)), binary


def _binary_input(name: str, array: np.ndarray, datatype: str, **over: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": array.nbytes},
    }
    entry.update(over)
    return entry


def test_binary_inputs_are_views_of_the_body() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    ids = np.array([3, 4], dtype=np.int64)
    body, binary = _body(
        [_binary_input("x", x, "FP32"), _binary_input("ids", ids, "INT64")],
        [x.tobytes(), ids.tobytes()],
    )
    assert binary is not None
    _, inputs = decode_request(body, SIGS, OUTS, binary)
    np.testing.assert_array_equal(inputs["x"], x)
    np.testing.assert_array_equal(inputs["ids"], ids)
    backing = np.frombuffer(binary, dtype=np.uint8)
    assert np.shares_memory(inputs["x"], backing) and np.shares_memory(inputs["ids"], backing)
    assert inputs["x"].flags.aligned and inputs["x"].flags.writeable


def test_aligned_body_puts_the_binary_part_on_64_bytes() -> None:
    for header_length in (0, 1, 37, 63, 64, 1000):
        body = oip_binary.aligned_body(str(header_length), header_length + 100)
        address = np.frombuffer(body, dtype=np.uint8).ctypes.data
        assert (address + header_length) % 64 == 0 and len(body) == header_length + 100


def test_an_unaligned_input_is_copied_not_misread() -> None:
    buffer = bytearray(1 + 16)
    buffer[1:] = np.arange(4, dtype=np.float32).tobytes()
    raw = memoryview(buffer)[1:]
    array = oip_binary.decode_tensor("x", "FP32", np.dtype("float32"), [1, 4], raw)
    assert array.flags.aligned
    np.testing.assert_array_equal(array.ravel(), np.arange(4, dtype=np.float32))


def test_json_and_binary_inputs_mix_in_one_request() -> None:
    x = np.ones((1, 4), dtype=np.float32)
    ids = {"name": "ids", "shape": [1], "datatype": "INT64", "data": [7]}
    body, binary = _body([_binary_input("x", x, "FP32"), ids], [x.tobytes()])
    _, inputs = decode_request(body, SIGS, OUTS, binary)
    assert inputs["ids"].tolist() == [7] and inputs["x"].tolist() == [[1, 1, 1, 1]]


def test_bool_fp16_and_uint8_layouts() -> None:
    sigs = [
        TensorSignature("m", np.dtype("bool"), (3,)),
        TensorSignature("h", np.dtype("float16"), (2,)),
        TensorSignature("u", np.dtype("uint8"), (2,)),
    ]
    h = np.array([1.5, -2.25], dtype=np.float16)
    inputs = [
        {"name": "m", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}},
        _binary_input("h", h, "FP16"),
        {"name": "u", "shape": [2], "datatype": "UINT8", "parameters": {"binary_data_size": 2}},
    ]
    body, binary = _body(inputs, [b"\x01\x00\x01", h.tobytes(), b"\xff\x00"])
    _, got = decode_request(body, sigs, [], binary)
    assert got["m"].dtype == np.bool_ and got["m"].tolist() == [True, False, True]
    assert got["h"].tolist() == [1.5, -2.25] and got["u"].tolist() == [255, 0]

    body, binary = _body(inputs, [b"\x01\x02\x01", h.tobytes(), b"\xff\x00"])
    with pytest.raises(InvalidInput, match="BOOL bytes must be 0 or 1"):
        decode_request(body, sigs, [], binary)


X = np.zeros((2, 4), dtype=np.float32)
IDS = np.zeros(2, dtype=np.int64)


@pytest.mark.parametrize(
    ("inputs", "blobs", "match"),
    [
        # a size that does not fit the shape and datatype (the total still adds up)
        (
            [
                _binary_input("x", X, "FP32", parameters={"binary_data_size": 28}),
                _binary_input("ids", IDS, "INT64", parameters={"binary_data_size": 20}),
            ],
            [X.tobytes(), IDS.tobytes()],
            r"input 'x': binary_data_size 28, expected 32 bytes for FP32 \[2, 4\]",
        ),
        # trailing bytes nobody declared
        (
            [_binary_input("x", X, "FP32"), _binary_input("ids", IDS, "INT64")],
            [X.tobytes(), IDS.tobytes(), b"junk"],
            "binary data is 52 bytes, the inputs' binary_data_size add up to 48",
        ),
        # fewer bytes than declared
        (
            [_binary_input("x", X, "FP32"), _binary_input("ids", IDS, "INT64")],
            [X.tobytes()],
            "binary data is 32 bytes, the inputs' binary_data_size add up to 48",
        ),
        (
            [
                _binary_input("x", X, "FP32", parameters={"binary_data_size": -1}),
                _binary_input("ids", IDS, "INT64"),
            ],
            [X.tobytes(), IDS.tobytes()],
            "binary_data_size must be a non-negative integer",
        ),
        (
            [
                _binary_input("x", X, "FP32", parameters={"binary_data_size": True}),
                _binary_input("ids", IDS, "INT64"),
            ],
            [X.tobytes(), IDS.tobytes()],
            "binary_data_size must be a non-negative integer",
        ),
        (
            [_binary_input("x", X, "FP32", data=[0] * 8), _binary_input("ids", IDS, "INT64")],
            [X.tobytes(), IDS.tobytes()],
            "both data and binary_data_size",
        ),
        (
            [_binary_input("x", X, "FP64"), _binary_input("ids", IDS, "INT64")],
            [X.tobytes(), IDS.tobytes()],
            "datatype FP64, expected FP32",
        ),
        (
            [
                {"name": "x", "shape": [2, 4], "datatype": "FP32"},
                _binary_input("ids", IDS, "INT64"),
            ],
            [IDS.tobytes()],
            "input 'x': no data",
        ),
    ],
)
def test_sizes_are_checked_against_shape_and_datatype(
    inputs: list[dict[str, Any]], blobs: list[bytes], match: str
) -> None:
    body, binary = _body(inputs, blobs)
    with pytest.raises(InvalidInput, match=match) as info:
        decode_request(body, SIGS, OUTS, binary)
    assert "\n" not in str(info.value)


def test_binary_inputs_need_the_header() -> None:
    body = {"inputs": [_binary_input("x", X, "FP32"), _binary_input("ids", IDS, "INT64")]}
    with pytest.raises(InvalidInput, match="no Inference-Header-Content-Length header"):
        decode_request(body, SIGS, OUTS, None)


@pytest.mark.parametrize("header", ["abc", "-1", "101", " ", "1e3"])
def test_bad_header_length_is_refused(header: str) -> None:
    with pytest.raises(InvalidInput, match="bad Inference-Header-Content-Length"):
        oip_binary.split_body(memoryview(bytes(100)), header)


def _request(**extra: Any) -> Any:
    body = {"inputs": [{"name": "ids", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    body.update(extra)
    x = {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0] * 8}
    body["inputs"].append(x)
    request, _ = decode_request(body, SIGS, OUTS)
    return request


OUTPUTS: dict[str, np.ndarray] = {
    "y": np.arange(6, dtype=np.float32).reshape(2, 3),
    "n": np.array([6, 8], dtype=np.int64),
}


def _encode(request: Any) -> tuple[dict[str, Any], list[Any]]:
    buffers: list[Any] = []
    body = encode_response(
        model_name="m", model_version="1", request=request, outputs=OUTPUTS, binary=buffers
    )
    return body, buffers


def test_binary_data_output_makes_every_output_binary() -> None:
    body, buffers = _encode(_request(parameters={"binary_data_output": True}))
    assert [o["parameters"] for o in body["outputs"]] == [
        {"binary_data_size": 24},
        {"binary_data_size": 16},
    ]
    assert all("data" not in o for o in body["outputs"])
    assert (
        bytes(buffers[0]) == OUTPUTS["y"].tobytes() and bytes(buffers[1]) == OUTPUTS["n"].tobytes()
    )


def test_per_output_binary_data_overrides_the_request_default() -> None:
    outputs = [{"name": "n", "parameters": {"binary_data": False}}, {"name": "y"}]
    body, buffers = _encode(_request(parameters={"binary_data_output": True}, outputs=outputs))
    assert json.loads(dumps_response(body["outputs"][0])) == {
        "name": "n",
        "shape": [2],
        "datatype": "INT64",
        "data": [6, 8],
    }
    assert body["outputs"][1]["parameters"] == {"binary_data_size": 24}
    assert len(buffers) == 1

    outputs = [{"name": "y", "parameters": {"binary_data": True}}]
    body, buffers = _encode(_request(outputs=outputs))
    assert [o["name"] for o in body["outputs"]] == ["y"] and len(buffers) == 1


def test_json_only_when_the_caller_takes_no_buffers() -> None:
    request = _request(parameters={"binary_data_output": True})
    body = encode_response(model_name="m", model_version="1", request=request, outputs=OUTPUTS)
    assert json.loads(dumps_response(body["outputs"][1]["data"])) == [6, 8]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"parameters": {"binary_data_output": "yes"}}, "binary_data_output must be true or false"),
        ({"outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}, "binary_data must be"),
        ({"outputs": [{"name": "y", "parameters": {"class_count": 3}}]}, "classification"),
        # the protocol's own name, as tritonclient.http sends it
        ({"outputs": [{"name": "y", "parameters": {"classification": 2}}]}, "classification"),
    ],
)
def test_bad_output_parameters(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        _request(**extra)


def test_bool_and_bytes_outputs() -> None:
    entry, data = oip_binary.encode_tensor("m", "BOOL", np.array([[True, False, True]]))
    assert bytes(data) == b"\x01\x00\x01" and entry["parameters"] == {"binary_data_size": 3}
    strings = np.array(["ab", "", "héllo"], dtype=object)
    entry, data = oip_binary.encode_tensor("s", "BYTES", strings)
    hello = "héllo".encode()
    assert (
        data == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 6) + hello
    )
    back = oip_binary.deserialize_bytes("s", memoryview(data), 3)
    assert back.tolist() == [b"ab", b"", hello]


@pytest.mark.parametrize(
    ("raw", "count", "match"),
    [
        (b"\x02\x00", 1, "ends inside an element length"),
        (struct.pack("<I", 5) + b"abc", 1, "overruns the data"),
        (struct.pack("<I", 1) + b"ab", 1, "1 bytes after the last BYTES element"),
    ],
)
def test_bytes_framing_is_checked(raw: bytes, count: int, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        oip_binary.deserialize_bytes("s", memoryview(raw), count)
