"""Open Inference Protocol (KServe v2) JSON tensors <-> numpy, and model metadata.

Pure functions, no web framework: ``decode_request`` turns a request body into named
numpy arrays (InvalidInput, one line, for anything wrong), ``encode_response`` builds the
response body, ``model_metadata`` the ``GET /v2/models/{name}`` answer.

Non-finite floats: JSON has no NaN or infinity, so (as in the protobuf JSON mapping of
the v2 gRPC messages) they are the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``: accepted in float input tensors, and written for float outputs by the
local API's serialiser (``NON_FINITE_JSON``). A number that does not fit the input's
datatype (1e39 for FP32, 300 for INT8) is refused instead of being rounded to infinity
or wrapped around.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

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
#: JSON spelling of non-finite floats (pydantic-core's ``inf_nan_mode="strings"``)
NON_FINITE_JSON: Final = "strings"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


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


def _flatten(data: Any) -> Iterator[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


def _floats_with_names(data: list[Any], datatype: str) -> tuple[np.ndarray, np.ndarray]:
    """Float data holding "NaN"/"Infinity"/"-Infinity": (float64 values, named mask)."""
    values: list[float] = []
    named: list[bool] = []
    for item in _flatten(data):
        if isinstance(item, str) and item in _NON_FINITE:
            values.append(_NON_FINITE[item])
            named.append(True)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            values.append(float(item))
            named.append(False)
        else:
            raise ValueError(f"values are not {datatype}")
    return np.asarray(values, dtype=np.float64), np.asarray(named, dtype=np.bool_)


def _check_range(flat: np.ndarray, data: list[Any], dtype: np.dtype[Any], datatype: str) -> None:
    """ValueError if an integer value does not fit ``dtype`` (it would wrap around)."""
    if not flat.size or dtype.kind not in "iu":
        return
    if flat.dtype.kind not in "iu":
        # numpy makes float64 or object of ints too big for int64/uint64 (e.g. 2**63)
        if all(type(v) is int for v in _flatten(data)):
            raise ValueError(f"value out of range for {datatype}")
        return
    info = np.iinfo(dtype)
    if int(flat.min()) < info.min or int(flat.max()) > info.max:
        raise ValueError(f"value out of range for {datatype}")


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
        named: np.ndarray | bool = False
        if dtype.kind == "f" and flat.dtype.kind in "UO":
            flat, named = _floats_with_names(tensor.data, expected)
        _check_range(flat, tensor.data, dtype, expected)
        if flat.size and not _compatible(flat.dtype.kind, dtype.kind):
            raise ValueError(f"values are not {expected}")
        with np.errstate(over="ignore", invalid="ignore"):
            array = flat.astype(dtype).reshape(-1)
        if dtype.kind == "f" and np.any(~np.isfinite(array) & ~named):
            raise ValueError(f"value out of range for {expected}")
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
