"""Small ONNX models that, like real published ones, refuse degenerate inputs (dynamic dims
of 1, integers of 0): the issue-18 reproductions for the input generation and the guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.support.onnx_models import OPSET, _save


def _model(path: Path, graph: object) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])  # type: ignore[arg-type]
    return _save(model, path)


def reflect_pad_model(path: Path) -> Path:
    """Like a voice model's STFT front end: x float32 [batch, samples] reflect-padded by 1
    on the samples axis (needs at least 2 samples), y = pad(x) * 2."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])
    pads = numpy_helper.from_array(np.array([0, 1, 0, 1], dtype=np.int64), "pads")
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Mul", ["padded", "two"], ["y"]),
    ]
    return _model(path, helper.make_graph(nodes, "reflect_pad", [x], [y], [pads, two]))


def reshape_model(path: Path) -> Path:
    """x float32 [batch, steps] reshaped to [-1, 10]: only a multiple of 10 values fits.
    ONNX Runtime refuses the generated 16 steps; OpenVINO was seen answering an empty
    [0, 10] tensor for them, which the guard must not take for an accurate answer."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "steps"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])
    shape = numpy_helper.from_array(np.array([-1, 10], dtype=np.int64), "shape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    return _model(path, helper.make_graph([node], "reshape", [x], [y], [shape]))


def conv_model(path: Path) -> Path:
    """Like an OCR recognizer: x float32 [batch, 1, height, width] through a 3x3
    convolution without padding (a 1-wide input is smaller than the kernel)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, None, None])
    w = np.linspace(-1.0, 1.0, 18, dtype=np.float32).reshape(2, 1, 3, 3)
    weight = numpy_helper.from_array(w, "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])
    return _model(path, helper.make_graph([node], "conv", [x], [y], [weight]))


def centred_model(path: Path) -> Path:
    """Like a detector's normalisation: y = x - mean(x over H, W), x float32
    [batch, 1, height, width]; all zeros on a 1x1 input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["x", "mean"], ["y"]),
    ]
    return _model(path, helper.make_graph(nodes, "centred", [x], [y]))


def sample_rate_model(path: Path, *, rate_name: str = "sr") -> Path:
    """Like a voice-activity model: x float32 [batch, samples] and an int64 scalar sample
    rate; y = x * 1 if the rate is 8000 or 16000, else NaN (the model's check fails)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "samples"])
    sr = helper.make_tensor_value_info(rate_name, TensorProto.INT64, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "samples"])
    consts = [
        numpy_helper.from_array(np.array(8000, dtype=np.int64), "r8"),
        numpy_helper.from_array(np.array(16000, dtype=np.int64), "r16"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "nan"),
    ]
    nodes = [
        helper.make_node("Equal", [rate_name, "r8"], ["is8"]),
        helper.make_node("Equal", [rate_name, "r16"], ["is16"]),
        helper.make_node("Or", ["is8", "is16"], ["ok"]),
        helper.make_node("Where", ["ok", "one", "nan"], ["factor"]),
        helper.make_node("Mul", ["x", "factor"], ["y"]),
    ]
    return _model(path, helper.make_graph(nodes, "sample_rate", [x, sr], [y], consts))


def classifier_model(path: Path) -> Path:
    """x float32 [batch, 8] -> logits float32 [batch, 5] (x @ W): a classifier-like output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])
    w = numpy_helper.from_array(np.linspace(-2, 2, 40, dtype=np.float32).reshape(8, 5), "W")
    node = helper.make_node("MatMul", ["x", "W"], ["logits"])
    return _model(path, helper.make_graph([node], "classifier", [x], [y], [w]))
