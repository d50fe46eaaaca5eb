"""Models for the benchmarks, built in code (nothing is downloaded)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class BenchModel:
    name: str
    build: Callable[[Path], Path]
    feeds: Callable[[], dict[str, np.ndarray]]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _mlp(path: Path, widths: list[int]) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes[-1] = helper.make_node("Identity", [f"h{len(widths) - 2}"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", widths[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", widths[-1]])
    return _save(helper.make_graph(nodes, "mlp", [x], [y], inits), path)


def conv_net(
    path: Path,
    *,
    channels: list[int],
    size: int,
    classes: int,
    seed: int,
    name: str = "cnn",
) -> Path:
    """Strided 3x3 convolutions with ReLU, global average pool, a linear head:
    image float32 [batch, 3, size, size] -> logits float32 [batch, classes]."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev, cin = [], [], "image", 3
    for i, cout in enumerate(channels):
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"c{i}"))
        nodes += [
            helper.make_node("Conv", [prev, f"c{i}"], [f"v{i}"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", [f"v{i}"], [f"a{i}"]),
        ]
        prev, cin = f"a{i}", cout
    head = (rng.standard_normal((cin, classes)) * 0.1).astype(np.float32)
    inits.append(numpy_helper.from_array(head, "head"))
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("MatMul", ["flat", "head"], ["logits"]),
    ]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])
    return _save(helper.make_graph(nodes, name, [x], [y], inits), path)


def _cnn(path: Path) -> Path:
    """Three 3x3 convolutions with ReLU, global average pool, a linear head: [1,3,64,64]."""
    return conv_net(path, channels=[16, 32, 64], size=64, classes=10, seed=1)


def _two_inputs(path: Path) -> Path:
    """float32 [batch, 64] and int64 [batch] inputs (embedding-style lookup offset)."""
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Cast", ["ids"], ["idf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["idf", "axes"], ["idf2"]),
        helper.make_node("Add", ["xw", "idf2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])
    return _save(helper.make_graph(nodes, "two_inputs", [x, ids], [y], [w, axes]), path)


def catalogue() -> list[BenchModel]:
    rng = np.random.default_rng(3)
    return [
        BenchModel(
            "tiny-mlp",
            lambda p: _mlp(p, [8, 16, 3]),
            lambda: {"x": rng.standard_normal((1, 8)).astype(np.float32)},
        ),
        BenchModel(
            "mlp-1024",
            lambda p: _mlp(p, [256, 1024, 1024, 256]),
            lambda: {"x": rng.standard_normal((8, 256)).astype(np.float32)},
        ),
        BenchModel(
            "two-inputs-int64",
            _two_inputs,
            lambda: {
                "x": rng.standard_normal((4, 64)).astype(np.float32),
                "ids": rng.integers(0, 100, 4, dtype=np.int64),
            },
        ),
        BenchModel(
            "cnn-64px",
            _cnn,
            lambda: {"image": rng.standard_normal((1, 3, 64, 64)).astype(np.float32)},
        ),
    ]
