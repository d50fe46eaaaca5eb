"""Read an ONNX model's inputs and outputs (and its external data files) safely.

Every error from onnx or protobuf is turned into ``BundleError`` here. onnx (with
protobuf, about 8 MB resident) is imported when a model is first read, not with this
module: an agent that verifies and serves bundles on OpenVINO never needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.errors import BundleError
from model_store.metadata import TensorSpec
from model_store.paths import check_relative_path

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

UNNAMED_DIM = "?"
UNKNOWN_RANK = "..."


def _onnx_errors() -> tuple[type[Exception], ...]:
    import onnx
    from google.protobuf.message import DecodeError

    return (DecodeError, OSError, ValueError, RuntimeError, onnx.checker.ValidationError)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def load_checked_model(model_path: Path) -> onnx.ModelProto:
    """Load the graph (not the external weights) after ``onnx.checker`` accepted the file.

    The checker is given the path so that it also checks external data files: they must
    exist, be regular files and stay inside the model's directory.
    """
    if not model_path.is_file():
        raise BundleError(f"model file not found: {model_path}")
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
        onnx.checker.check_model(str(model_path))
    except _onnx_errors() as exc:
        raise BundleError(
            f"{model_path.name} is not a valid ONNX model: {_one_line(str(exc))}"
        ) from exc
    return model


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graph_tensors(subgraph)


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """The relative paths of the external data files a model refers to (sorted, unique)."""
    import onnx

    locations: set[str] = set()
    for tensor in _graph_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for entry in tensor.external_data:
            if entry.key == "location":
                locations.add(check_relative_path(entry.value, what="external data location"))
    return sorted(locations)


def _dtype_name(elem_type: int) -> str:
    import onnx
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type).name)
    except (KeyError, ValueError, TypeError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def _shape(tensor_type: onnx.TypeProto.Tensor) -> list[int | str]:
    if not tensor_type.HasField("shape"):
        return [UNKNOWN_RANK]
    dims: list[int | str] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(str(dim.dim_param))
        else:
            dims.append(UNNAMED_DIM)
    return dims


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind == "tensor_type":
        tensor = value.type.tensor_type
        return TensorSpec(
            name=value.name, dtype=_dtype_name(tensor.elem_type), shape=_shape(tensor)
        )
    return TensorSpec(name=value.name, dtype=str(kind or "unknown").removesuffix("_type"), shape=[])


def io_specs(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs (initializers excluded) and outputs of a loaded model, in graph order."""
    constant = {t.name for t in model.graph.initializer}
    constant |= {s.values.name for s in model.graph.sparse_initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in constant]
    outputs = [_spec(v) for v in model.graph.output]
    return inputs, outputs


def read_onnx_io(model_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of the ONNX model at ``model_path``.

    ``BundleError`` if the file is missing or not a valid ONNX model (``onnx.load`` +
    ``onnx.checker``). Graph inputs that are initializers are not model inputs.
    """
    return io_specs(load_checked_model(model_path))
