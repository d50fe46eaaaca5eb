"""Open Inference Protocol (KServe v2) tensors <-> numpy, and model metadata.

Pure functions, no web framework: ``decode_request`` turns a request body (the parsed
JSON, plus the binary part when the binary tensor data extension is used: see
``agent.serving.oip_binary``) into named numpy arrays (InvalidInput, one line, for anything
wrong); JSON and binary inputs mix freely in one request. ``encode_response`` builds
the response body, writing an output as binary when the request asks for it
(``binary_data`` on the output, or ``binary_data_output`` on the request) and the
caller collects binary buffers. ``model_metadata`` is the ``GET /v2/models/{name}``
answer.

Non-finite floats: JSON has no NaN or infinity, so (as in the protobuf JSON mapping of
the v2 gRPC messages) they are the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``: accepted in float input tensors, and written for float outputs by the
local API's serialiser (``agent.serving.local_api.NON_FINITE_JSON``). A number that does
not fit the input's datatype (1e39 for FP32, 300 for INT8) is refused instead of being
rounded to infinity or wrapped around. Numeric JSON tensor data is parsed straight into
arrays and written straight from them (``agent.serving.oip_json``).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import InvalidInput
from agent.runners.base import TensorSignature
from agent.serving import oip_binary
from agent.serving.oip_json import JsonNumbers

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
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: an output parameter of the classification extension (not supported: refused), as the
#: KServe v2 protocol and ``tritonclient`` (``class_count=``) spell it, and as it was
#: spelt here before (``class_count``)
CLASSIFICATION = "classification"


@functools.cache  # numpy's dtype.name is Python code, slow enough to show per request
def oip_datatype(dtype: np.dtype[Any]) -> str:
    return DATATYPES.get(dtype.name, "BYTES" if dtype.kind in "USO" else dtype.name.upper())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Strict):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    name: str
    shape: list[int]
    datatype: str
    # None: binary (parameters.binary_data_size); JsonNumbers: parsed straight into an
    # array (agent.serving.oip_json)
    data: list[Any] | JsonNumbers | None = None
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


def _finite_or_named(array: np.ndarray, named: np.ndarray | bool) -> bool:
    """Whether each value is finite or was given by name (``"NaN"``, ``"Infinity"``).
    Without names this is ``isfinite(...).all()``: a mask with ``~False`` in it (the
    integer -1) made an int64 array of the whole tensor, ten times the work."""
    finite = np.isfinite(array)
    return bool(finite.all() if named is False else (finite | named).all())


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


def _tensor_dtype(
    tensor: RequestInput, signature: TensorSignature | None
) -> tuple[TensorSignature, np.dtype[Any]]:
    """(signature, numpy dtype) of ``tensor``, once its datatype and shape are checked."""
    if signature is None:
        raise InvalidInput(f"unknown input {tensor.name!r}")
    expected = oip_datatype(signature.dtype)
    if tensor.datatype != expected:
        raise InvalidInput(
            f"input {tensor.name!r}: datatype {tensor.datatype}, expected {expected}"
        )
    shape = tensor.shape
    if shape and min(shape) < 0:
        raise InvalidInput(f"input {tensor.name!r}: negative dimension in shape {shape}")
    dtype = NUMPY_DTYPES.get(expected)
    if dtype is None:
        raise InvalidInput(f"input {tensor.name!r}: datatype {expected} is not supported")
    # numpy cannot even shape an empty array whose non-zero dimensions overflow its index
    # type ([2**62, 2**62, 0]): refused here rather than failing inside numpy
    count = math.prod(shape) or math.prod(d for d in shape if d)
    if count * dtype.itemsize > sys.maxsize:
        raise InvalidInput(f"input {tensor.name!r}: shape {tensor.shape} is too large")
    return signature, dtype


def decode_tensor(
    tensor: RequestInput, signature: TensorSignature | None, raw: memoryview | None = None
) -> np.ndarray:
    """One request tensor as a numpy array checked against ``signature``; ``raw`` is its
    binary data (binary tensor data extension), else its values are ``tensor.data``."""
    signature, dtype = _tensor_dtype(tensor, signature)
    if raw is not None:
        array = oip_binary.decode_tensor(tensor.name, tensor.datatype, dtype, tensor.shape, raw)
        signature.check(array)
        return array
    if tensor.data is None:
        raise InvalidInput(f"input {tensor.name!r}: no data (nor {oip_binary.BINARY_SIZE})")
    expected = tensor.datatype
    try:
        data = tensor.data
        flat = data.values if isinstance(data, JsonNumbers) else np.asarray(data)
        named: np.ndarray | bool = False
        if isinstance(data, list):  # a JsonNumbers is all numbers of the right kind
            if dtype.kind == "f" and flat.dtype.kind in "UO":
                flat, named = _floats_with_names(data, expected)
            _check_range(flat, data, dtype, expected)
        else:
            _check_range(flat, [], dtype, expected)
        if flat.size and not _compatible(flat.dtype.kind, dtype.kind):
            raise ValueError(f"values are not {expected}")
        with np.errstate(over="ignore", invalid="ignore"):
            array = flat.astype(dtype).reshape(-1)
        if dtype.kind == "f" and not _finite_or_named(array, named):
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
    body: Any,
    signatures: Sequence[TensorSignature],
    output_names: Sequence[str],
    binary: memoryview | None = None,
) -> tuple[InferenceRequest, dict[str, np.ndarray]]:
    """Parse and check a request body (``binary``: the bytes after its JSON header, for
    the binary tensor data extension); the arrays are ready for ``Runner.infer``."""
    request = parse_request(body)
    slices = oip_binary.input_slices(request.inputs, binary)
    return request, decode_inputs(request, slices, signatures, output_names)


def decode_inputs(
    request: InferenceRequest,
    slices: Sequence[memoryview | None],
    signatures: Sequence[TensorSignature],
    output_names: Sequence[str],
) -> dict[str, np.ndarray]:
    """The request's input arrays, each checked against its signature (``slices``: each
    input's raw little-endian data, None where its values are ``data``), and its
    requested outputs checked against ``output_names``. The REST and gRPC paths share it."""
    by_name = {s.name: s for s in signatures}
    inputs: dict[str, np.ndarray] = {}
    for tensor, raw in zip(request.inputs, slices, strict=True):
        if tensor.name in inputs:
            raise InvalidInput(f"input {tensor.name!r} given twice")
        inputs[tensor.name] = decode_tensor(tensor, by_name.get(tensor.name), raw)
    if len(inputs) != len(by_name):  # every name in inputs is one of by_name's
        missing = sorted(set(by_name) - set(inputs))
        raise InvalidInput(f"missing input {missing[0]!r}")
    if request.parameters:
        oip_binary.flag("request", request.parameters, oip_binary.BINARY_OUTPUT)
    for wanted in request.outputs or ():
        if wanted.name not in output_names:
            raise InvalidInput(
                f"unknown output {wanted.name!r}; model outputs are {list(output_names)}"
            )
        if parameters := wanted.parameters:
            if not isinstance(parameters.get(oip_binary.BINARY_DATA, False), bool):
                oip_binary.flag(f"output {wanted.name!r}", parameters, oip_binary.BINARY_DATA)
            if CLASSIFICATION in parameters or "class_count" in parameters:
                raise InvalidInput(
                    f"output {wanted.name!r}: the classification extension is not supported"
                )
    return inputs


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """An output as JSON tensor data: a numeric array stays an array (written from its
    memory by ``oip_json.dumps_response``); non-finite floats and BYTES become lists."""
    flat = array.reshape(-1)
    data: Any = flat
    if array.dtype.kind not in "biuf":
        data = flat.tolist()
    elif array.dtype.kind == "f" and not np.isfinite(flat).all():
        values = flat.astype(object)
        values[np.isnan(flat)] = "NaN"
        values[np.isposinf(flat)] = "Infinity"
        values[np.isneginf(flat)] = "-Infinity"
        data = values.tolist()
    elif not flat.dtype.isnative:  # pragma: no cover - big-endian arrays
        data = flat.astype(flat.dtype.newbyteorder("="))
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": oip_datatype(array.dtype),
        "data": data,
    }


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request: InferenceRequest,
    outputs: Mapping[str, np.ndarray],
    binary: list[Any] | None = None,
) -> dict[str, Any]:
    """The OIP response body; ``request.outputs`` (if given) selects and orders outputs.

    With a ``binary`` list, each output the request wants as binary is appended to it
    (a buffer, in order) and its entry carries ``binary_data_size`` instead of ``data``.
    """
    default = oip_binary.flag("request", request.parameters, oip_binary.BINARY_OUTPUT) or False
    if request.outputs:
        wanted = [
            (o.name, oip_binary.flag(o.name, o.parameters, oip_binary.BINARY_DATA))
            for o in request.outputs
        ]
    else:
        wanted = [(name, None) for name in outputs]
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        body["id"] = request.id
    entries: list[dict[str, Any]] = []
    for name, as_binary in wanted:
        array = outputs[name]
        if binary is not None and (default if as_binary is None else as_binary):
            entry, data = oip_binary.encode_tensor(name, oip_datatype(array.dtype), array)
            binary.append(data)
            entries.append(entry)
        else:
            entries.append(encode_tensor(name, array))
    body["outputs"] = entries
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
