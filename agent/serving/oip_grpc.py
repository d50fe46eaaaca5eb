"""KServe v2 gRPC inference messages <-> the checked tensors of ``agent.serving.oip``.

``decode`` turns a ``ModelInferRequest`` into the same ``InferenceRequest`` the REST path
parses plus each input's raw little-endian bytes, so ``oip.decode_inputs`` checks and
decodes both transports' tensors alike (datatype, shape, sizes, BOOL bytes: one-line
``InvalidInput``). An input's data is either its slot of ``raw_input_contents`` (as
Triton's client sends it; a numpy view of the bytes protobuf hands out) or its typed
``contents`` field: ``bool_contents`` (BOOL), ``int_contents`` (INT8/16/32),
``int64_contents``, ``uint_contents`` (UINT8/16/32), ``uint64_contents``,
``fp32_contents``, ``fp64_contents``; FP16 has no typed field (raw only, as the proto
says). A typed value that does not fit the datatype (300 for INT8) is refused, never
wrapped around. ``encode`` writes every output to ``raw_output_contents`` (what Triton's
client reads), in the binary layout of ``agent.serving.oip_binary``.

Request and output ``parameters`` are not used, except that the classification extension
(an output's ``classification`` parameter) is refused, as on the REST path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agent.errors import InvalidInput
from agent.serving import oip, oip_binary

#: OIP datatype -> (typed contents field, numpy dtype its values are read as)
TYPED_FIELDS: dict[str, tuple[str, np.dtype[Any]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
}
_CONTENT_FIELDS = {field for field, _ in TYPED_FIELDS.values()} | {"bytes_contents"}


def _typed(tensor: Any) -> memoryview | None:
    """The raw bytes of a tensor's typed ``contents``; None if it has none."""
    if not tensor.HasField("contents"):
        return None
    contents = tensor.contents
    used = [f.name for f, _ in contents.ListFields() if f.name in _CONTENT_FIELDS]
    wanted = TYPED_FIELDS.get(tensor.datatype)
    if wanted is None:
        if not used:
            return None
        raise InvalidInput(
            f"input {tensor.name!r}: {tensor.datatype} data must be in raw_input_contents"
        )
    field, read_as = wanted
    if any(name != field for name in used):
        others = ", ".join(sorted(set(used) - {field}))
        raise InvalidInput(f"input {tensor.name!r}: {others} given for {tensor.datatype}")
    values = np.asarray(getattr(contents, field), dtype=read_as)
    target = oip.NUMPY_DTYPES[tensor.datatype]
    if target.kind in "iu" and values.size and target != read_as:
        info = np.iinfo(target)
        if int(values.min()) < info.min or int(values.max()) > info.max:
            raise InvalidInput(f"input {tensor.name!r}: value out of range for {tensor.datatype}")
    return np.ascontiguousarray(values.astype(target.newbyteorder("<"))).view(np.uint8).data


def _check_size(tensor: Any, data: memoryview, where: str) -> None:
    """InvalidInput unless ``data`` holds exactly the tensor's shape of its datatype."""
    dtype = oip.NUMPY_DTYPES.get(tensor.datatype)
    if dtype is None or any(d < 0 for d in tensor.shape):
        return  # oip.decode_inputs refuses the datatype or shape in its words
    count = math.prod(tensor.shape)
    if len(data) != count * dtype.itemsize:
        got = len(data) // dtype.itemsize
        raise InvalidInput(
            f"input {tensor.name!r}: {got} values in {where}, expected {count} "
            f"for shape {list(tensor.shape)}"
        )


def decode(
    message: Any,
) -> tuple[oip.InferenceRequest, list[memoryview | None]]:
    """(the request as the REST path parses it, each input's raw data) of a
    ``ModelInferRequest``; ``oip.decode_inputs`` checks and decodes the tensors."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs: list[oip.RequestInput] = []
    slices: list[memoryview | None] = []
    for i, tensor in enumerate(message.inputs):
        typed = _typed(tensor)
        if raw and typed is not None:
            raise InvalidInput(f"input {tensor.name!r}: both contents and raw_input_contents")
        data = memoryview(raw[i]) if raw else typed
        if data is None:
            raise InvalidInput(f"input {tensor.name!r}: no data")
        _check_size(tensor, data, "raw_input_contents" if raw else "contents")
        inputs.append(
            oip.RequestInput(name=tensor.name, shape=list(tensor.shape), datatype=tensor.datatype)
        )
        slices.append(data)
    if not inputs:
        raise InvalidInput("bad inference request: inputs: no input given")
    outputs = []
    for wanted in message.outputs:
        if oip.CLASSIFICATION in wanted.parameters:
            raise InvalidInput(
                f"output {wanted.name!r}: the classification extension is not supported"
            )
        outputs.append(oip.RequestOutput(name=wanted.name))
    request = oip.InferenceRequest(id=message.id or None, inputs=inputs, outputs=outputs or None)
    return request, slices


def encode(
    response: Any,
    *,
    model_name: str,
    model_version: str,
    request: oip.InferenceRequest,
    outputs: dict[str, np.ndarray],
) -> Any:
    """Fill ``response`` (an empty ``ModelInferResponse``): the outputs the request asks
    for (all, in the model's order, if it names none), each as raw contents."""
    response.model_name = model_name
    response.model_version = model_version
    if request.id is not None:
        response.id = request.id
    names = [o.name for o in request.outputs] if request.outputs else list(outputs)
    for name in names:
        array = outputs[name]
        entry, data = oip_binary.encode_tensor(name, oip.oip_datatype(array.dtype), array)
        response.outputs.add(name=name, datatype=entry["datatype"], shape=entry["shape"])
        response.raw_output_contents.append(bytes(data))
    return response
