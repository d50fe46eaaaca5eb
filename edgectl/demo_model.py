"""The demo's model, built in code: a tiny two-layer classifier (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME = "features"
INPUT_WIDTH = 8


def build_demo_model(path: Path, *, seed: int = 7) -> Path:
    """features float32 [batch, 8] -> probs float32 [batch, 3] (MatMul, Relu, Softmax)."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((INPUT_WIDTH, 16)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(16, dtype=np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 3)).astype(np.float32), "w2")
    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", INPUT_WIDTH])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])
    nodes = [
        helper.make_node("MatMul", [INPUT_NAME, "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "edgefleet_demo", [x], [y], [w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
