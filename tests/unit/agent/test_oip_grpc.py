"""gRPC inference messages <-> checked tensors (``agent.serving.oip_grpc``): every typed
``contents`` field, raw contents, and one-line errors for what does not fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.errors import InvalidInput
from agent.runners.base import TensorSignature
from agent.serving import grpc_schema, oip, oip_grpc

#: datatype -> (typed field, values at both ends of its range)
TYPED: dict[str, tuple[str, list[Any]]] = {
    "BOOL": ("bool_contents", [True, False]),
    "UINT8": ("uint_contents", [0, 255]),
    "UINT16": ("uint_contents", [1, 65535]),
    "UINT32": ("uint_contents", [2, 2**32 - 1]),
    "UINT64": ("uint64_contents", [3, 2**64 - 1]),
    "INT8": ("int_contents", [-128, 127]),
    "INT16": ("int_contents", [-(2**15), 2**15 - 1]),
    "INT32": ("int_contents", [-(2**31), 2**31 - 1]),
    "INT64": ("int64_contents", [-(2**63), 2**63 - 1]),
    "FP32": ("fp32_contents", [1.5, float("-inf")]),
    "FP64": ("fp64_contents", [1e300, -0.5]),
}


def _request(**typed: tuple[str, list[Any]]) -> Any:
    message = grpc_schema.messages()["ModelInferRequest"](model_name="m")
    for datatype, (field, values) in typed.items():
        tensor = message.inputs.add(name=datatype.lower(), datatype=datatype, shape=[1, 2])
        getattr(tensor.contents, field).extend(values)
    return message


def _decode(message: Any) -> dict[str, np.ndarray]:
    request, slices = oip_grpc.decode(message)
    signatures = [
        TensorSignature(t.name, oip.NUMPY_DTYPES[t.datatype], (None, None)) for t in request.inputs
    ]
    return oip.decode_inputs(request, slices, signatures, [])


def test_every_typed_field_decodes_to_its_datatype() -> None:
    arrays = _decode(_request(**TYPED))
    for datatype, (_, values) in TYPED.items():
        array = arrays[datatype.lower()]
        assert array.dtype == oip.NUMPY_DTYPES[datatype] and array.shape == (1, 2)
        assert array.ravel().tolist() == values, datatype


def test_raw_contents_decode() -> None:
    message = _request()
    message.inputs.add(name="fp16", datatype="FP16", shape=[1, 2])
    message.raw_input_contents.append(np.array([0.5, -1], np.float16).tobytes())
    assert _decode(message)["fp16"].tolist() == [[0.5, -1.0]]


def _classification(message: Any) -> None:
    message.outputs.add(name="y").parameters["classification"].int64_param = 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda m: m.inputs[0].contents.int_contents.__setitem__(0, 300), "out of range for INT8"),
        (lambda m: m.inputs[0].contents.fp32_contents.append(1.0), "fp32_contents given for INT8"),
        (lambda m: m.raw_input_contents.append(b"\0\0"), "both contents and raw_input_contents"),
        (lambda m: m.inputs.add(name="h", datatype="FP16", shape=[1]), "'h': no data"),
        (
            lambda m: m.inputs[0].contents.int_contents.append(1),
            "3 values in contents, expected 2 for shape \\[1, 2\\]",
        ),
        (_classification, "the classification extension is not supported"),
    ],
)
def test_what_does_not_fit_is_one_line(change: Any, error: str) -> None:
    message = _request(INT8=TYPED["INT8"])
    change(message)
    with pytest.raises(InvalidInput, match=error) as caught:
        _decode(message)
    assert "\n" not in str(caught.value)


def test_an_empty_tensor_of_unshapeable_dimensions_is_refused() -> None:
    message = _request()
    message.inputs.add(name="x", datatype="FP32", shape=[2**62, 2**62, 0])
    message.raw_input_contents.append(b"")
    with pytest.raises(InvalidInput, match=r"^input 'x': shape \[.*\] is too large$"):
        _decode(message)


def test_raw_contents_must_cover_every_input() -> None:
    message = _request()
    for name in ("a", "b"):
        message.inputs.add(name=name, datatype="FP32", shape=[1])
    message.raw_input_contents.append(b"\0" * 4)
    with pytest.raises(InvalidInput, match="raw_input_contents has 1 entries for 2 inputs"):
        _decode(message)


def test_outputs_are_raw_in_the_order_asked() -> None:
    request = oip.InferenceRequest(
        id="7",
        inputs=[oip.RequestInput(name="x", shape=[1], datatype="FP32")],
        outputs=[oip.RequestOutput(name="b"), oip.RequestOutput(name="a")],
    )
    outputs = {"a": np.array([[1, 2]], np.int16), "b": np.array([True, False])}
    response = oip_grpc.encode(
        grpc_schema.messages()["ModelInferResponse"](),
        model_name="m",
        model_version="1",
        request=request,
        outputs=outputs,
    )
    assert (response.id, [o.name for o in response.outputs]) == ("7", ["b", "a"])
    assert [o.datatype for o in response.outputs] == ["BOOL", "INT16"]
    assert list(response.outputs[1].shape) == [1, 2]
    assert list(response.raw_output_contents) == [b"\1\0", b"\1\0\2\0"]
