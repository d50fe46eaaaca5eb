"""Open Inference Protocol (KServe v2) JSON tensors <-> numpy, and model metadata.

Pure functions, no web framework: ``decode_request`` turns a request body into named
numpy arrays (InvalidInput, one line, for anything wrong), ``encode_response`` builds the
response body, ``model_metadata`` the ``GET /v2/models/{name}`` answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import InvalidInput
from agent.runners.base import TensorSignature

#: numpy dtype name -> OIP datatype
DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "object": "BYTES",
    "str": "BYTES",
}
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    oip: np.dtype(name) for name, oip in DATATYPES.items() if oip != "BYTES"
}


def oip_datatype(dtype: np.dtype[Any]) -> str:
    return DATATYPES.get(dtype.name, "BYTES" if dtype.kind in "USO" else dtype.name.upper())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Strict):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestOutput(_Strict):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Strict):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def parse_request(body: Any) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInput(f"bad inference request: {where}: {first.get('msg')}") from exc


def _compatible(got: str, want: str) -> bool:
    """JSON values of numpy kind ``got`` may fill a tensor of kind ``want``."""
    if want == "b":
        return got == "b"
    if want in "iu":
        return got in "iu"
    return got in "iuf"


def decode_tensor(tensor: RequestInput, signature: TensorSignature | None) -> np.ndarray:
    """One request tensor as a numpy array checked against ``signature``."""
    if signature is None:
        raise InvalidInput(f"unknown input {tensor.name!r}")
    expected = oip_datatype(signature.dtype)
    if tensor.datatype != expected:
        raise InvalidInput(
            f"input {tensor.name!r}: datatype {tensor.datatype}, expected {expected}"
        )
    if any(d < 0 for d in tensor.shape):
        raise InvalidInput(f"input {tensor.name!r}: negative dimension in shape {tensor.shape}")
    dtype = NUMPY_DTYPES.get(expected)
    if dtype is None:
        raise InvalidInput(f"input {tensor.name!r}: datatype {expected} is not supported")
    try:
        flat = np.asarray(tensor.data)
        if flat.size and not _compatible(flat.dtype.kind, dtype.kind):
            raise ValueError(f"values are not {expected}")
        array = flat.astype(dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"input {tensor.name!r}: {str(exc).splitlines()[0]}") from exc
    count = math.prod(tensor.shape)
    if array.size != count:
        raise InvalidInput(
            f"input {tensor.name!r}: {array.size} values for shape {tensor.shape}, expected {count}"
        )
    array = array.reshape(tensor.shape)
    signature.check(array)
    return array


def decode_request(
    body: Any, signatures: Sequence[TensorSignature], output_names: Sequence[str]
) -> tuple[InferenceRequest, dict[str, np.ndarray]]:
    """Parse and check a request body; the arrays are ready for ``Runner.infer``."""
    request = parse_request(body)
    by_name = {s.name: s for s in signatures}
    inputs: dict[str, np.ndarray] = {}
    for tensor in request.inputs:
        if tensor.name in inputs:
            raise InvalidInput(f"input {tensor.name!r} given twice")
        inputs[tensor.name] = decode_tensor(tensor, by_name.get(tensor.name))
    missing = sorted(set(by_name) - set(inputs))
    if missing:
        raise InvalidInput(f"missing input {missing[0]!r}")
    for wanted in request.outputs or []:
        if wanted.name not in output_names:
            raise InvalidInput(
                f"unknown output {wanted.name!r}; model outputs are {list(output_names)}"
            )
    return request, inputs


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": oip_datatype(array.dtype),
        "data": array.reshape(-1).tolist(),
    }


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request: InferenceRequest,
    outputs: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The OIP response body; ``request.outputs`` (if given) selects and orders outputs."""
    names = [o.name for o in request.outputs] if request.outputs else list(outputs)
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = [encode_tensor(name, outputs[name]) for name in names]
    return body


def _tensor_metadata(sig: TensorSignature) -> dict[str, Any]:
    return {
        "name": sig.name,
        "datatype": oip_datatype(sig.dtype),
        "shape": [-1 if d is None else d for d in sig.shape] if sig.shape is not None else [-1],
    }


def model_metadata(
    *,
    name: str,
    version: str,
    platform: str,
    inputs: Sequence[TensorSignature],
    outputs: Sequence[TensorSignature],
) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [version],
        "platform": platform,
        "inputs": [_tensor_metadata(s) for s in inputs],
        "outputs": [_tensor_metadata(s) for s in outputs],
    }
