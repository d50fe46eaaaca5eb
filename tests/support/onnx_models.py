"""Small real ONNX models built in code for the tests, the demo-like flows and bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def affine_model(path: Path, *, scale: float = 2.0, bias: float = 1.0) -> Path:
    """y = x * scale + bias, x float32 [batch, 4] with a dynamic batch."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    s = numpy_helper.from_array(np.full((4,), scale, dtype=np.float32), "scale")
    b = numpy_helper.from_array(np.full((4,), bias, dtype=np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "scale"], ["xs"]),
            helper.make_node("Add", ["xs", "bias"], ["y"]),
        ],
        "affine",
        [x],
        [y],
        [s, b],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def two_input_model(path: Path, *, weight: float = 0.5) -> Path:
    """Two inputs of different dtypes and a dynamic batch dimension.

    x: float32 [batch, 4], ids: int64 [batch]
    y = x @ W + cast(ids, float)[:, None]      (float32 [batch, 3])
    n = ids * 2                                   (int64 [batch])
    """
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"])
    w = numpy_helper.from_array(
        (np.arange(12, dtype=np.float32).reshape(4, 3) * weight).astype(np.float32), "W"
    )
    two = numpy_helper.from_array(np.array(2, dtype=np.int64), "two")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["idsf", "axes"], ["idsf2"]),
        helper.make_node("Add", ["xw", "idsf2"], ["y"]),
        helper.make_node("Mul", ["ids", "two"], ["n"]),
    ]
    graph = helper.make_graph(nodes, "two_inputs", [x, ids], [y, n], [w, two, axes])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def bool_input_model(path: Path) -> Path:
    """x float32 [batch, 2], mask bool [batch, 2] -> y = where(mask, x, 0)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    m = helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    graph = helper.make_graph(
        [helper.make_node("Where", ["mask", "x", "zero"], ["y"])], "masked", [x, m], [y], [zero]
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


#: every numeric dtype the local API carries (OIP datatype -> numpy dtype), BOOL included
EVERY_DTYPE = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}


def every_dtype_model(path: Path) -> Path:
    """One input per ``EVERY_DTYPE`` entry, ``in_<datatype>`` [batch, n] (both dims
    dynamic), echoed by Identity as ``out_<datatype>``."""
    inputs, outputs, nodes = [], [], []
    for datatype, dtype in EVERY_DTYPE.items():
        elem = helper.np_dtype_to_tensor_dtype(dtype)
        name = datatype.lower()
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["batch", "n"]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["batch", "n"]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "every_dtype", inputs, outputs)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def masked_head_model(path: Path, *, scale: float = 3.0) -> Path:
    """features float32 [batch, 3], mask bool [batch, 3] -> z = where(mask, features *
    scale - 1, 0) float32 [batch, 3]: a second stage that takes what ``two_input_model``
    outputs as ``y`` (the pipeline tests)."""
    f = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])
    m = helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch", 3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3])
    inits = [
        numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Mul", ["features", "scale"], ["fs"]),
        helper.make_node("Sub", ["fs", "one"], ["shifted"]),
        helper.make_node("Where", ["mask", "shifted", "zero"], ["z"]),
    ]
    graph = helper.make_graph(nodes, "masked_head", [f, m], [z], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def external_data_model(path: Path, *, location: str = "weights/two_input.data") -> Path:
    """``two_input_model`` with its weight ``W`` in the external data file ``location``
    (relative to the model's directory), as ``onnx.save(save_as_external_data=True)`` writes.
    The 8-byte constants stay inline (ONNX Runtime's shape inference cannot read an
    external Unsqueeze ``axes``)."""
    two_input_model(path)
    model = onnx.load(str(path))
    (path.parent / location).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=64,  # compared with sys.getsizeof(raw_data): W only
    )
    return path


def table_model(path: Path, *, rows: int, weight: float = 0.5) -> Path:
    """``two_input_model`` plus a float32 table of ``rows`` zeros (``rows * 4`` bytes a
    backend must hold in memory): y = x @ W + cast(ids)[:, None] + table[ids]. Same
    outputs as ``two_input_model`` for ``0 <= ids < rows``; for the memory tests."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"])
    w = numpy_helper.from_array(
        (np.arange(12, dtype=np.float32).reshape(4, 3) * weight).astype(np.float32), "W"
    )
    table = numpy_helper.from_array(np.zeros((rows, 1), dtype=np.float32), "table")
    two = numpy_helper.from_array(np.array(2, dtype=np.int64), "two")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["idsf", "axes"], ["idsf2"]),
        helper.make_node("Add", ["xw", "idsf2"], ["y0"]),
        helper.make_node("Gather", ["table", "ids"], ["looked"], axis=0),
        helper.make_node("Add", ["y0", "looked"], ["y"]),
        helper.make_node("Mul", ["ids", "two"], ["n"]),
    ]
    graph = helper.make_graph(nodes, "table", [x, ids], [y, n], [w, table, two, axes])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def slow_model(path: Path, *, width: int = 1024, depth: int = 64) -> Path:
    """x float32 [batch, 8] -> ``depth`` x (MatMul [width, width], Tanh) -> y [batch, 4]:
    the work grows with the batch, so one big request is slow and warm-up is not (the
    tests of a request in flight while the agent stops)."""
    rng = np.random.default_rng(0)
    weights = {
        "w_in": rng.standard_normal((8, width)) / 3,
        "w": rng.standard_normal((width, width)) / np.sqrt(width),
        "w_out": rng.standard_normal((width, 4)) / np.sqrt(width),
    }
    nodes = [helper.make_node("MatMul", ["x", "w_in"], ["h0"])]
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{depth}", "w_out"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def slow_two_input_model(
    path: Path, *, weight: float = 0.5, width: int = 512, depth: int = 48
) -> Path:
    """``two_input_model``'s signature and outputs (same ``weight``: the same answers),
    plus a chain of ``depth`` MatMul [width, width] + Tanh on x whose result is added
    times zero: it agrees with the fast one and is much slower (the shadow tests)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"])
    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(
            (np.arange(12, dtype=np.float32).reshape(4, 3) * weight).astype(np.float32), "W"
        ),
        numpy_helper.from_array(np.array(2, dtype=np.int64), "two"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        numpy_helper.from_array((rng.standard_normal((4, width)) / 2).astype(np.float32), "w_in"),
        numpy_helper.from_array(
            (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "w_h"
        ),
        numpy_helper.from_array(np.zeros((width, 3), dtype=np.float32), "w_zero"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w_in"], ["h0"])]
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w_h"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes += [
        helper.make_node("MatMul", [f"h{depth}", "w_zero"], ["nothing"]),
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["idsf", "axes"], ["idsf2"]),
        helper.make_node("Add", ["xw", "idsf2"], ["y0"]),
        helper.make_node("Add", ["y0", "nothing"], ["y"]),
        helper.make_node("Mul", ["ids", "two"], ["n"]),
    ]
    graph = helper.make_graph(nodes, "slow_two_input", [x, ids], [y, n], init)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)
