"""The models of ``bench.selection``, built in code with ``onnx.helper`` (nothing is
downloaded). Every float input has a dynamic batch dimension; weights are random
with He (ReLU) or 1/sqrt(fan-in) scaling, so activations stay O(1) through the whole
network and a reduced precision's error is what it would be on a trained model of that
shape, not an artefact of exploding or vanishing values.

    resnet18-like        ResNet-18's shape: 7x7/2 stem + 3x3/2 max pool, 4 stages of 2
                         basic blocks (residual Add; 1x1/2 projection where the shape
                         changes), 64-128-256-512 channels, global average pool, FC 1000;
                         input [batch, 3, 128, 128] (about 0.6 GMAC)
    depthwise-cnn        MobileNet-like: 3x3/2 conv, 6 depthwise-separable blocks
                         (depthwise 3x3 with group = channels, ReLU, pointwise 1x1, ReLU),
                         global average pool, FC 1000; input [batch, 3, 160, 160]
    transformer-encoder  4 pre-LN layers, d_model 256, 4 heads, FFN 1024 (Erf-GELU);
                         input [batch, 64, 256]
    tiny-mlp             [batch, 16] -> 64 -> 64 -> 4 with ReLU
    dynamic-cnn          6 3x3 convs (strides 2, 32-256 channels), global average pool,
                         FC 100; input [batch, 3, height, width], measured at 120x160
    stateful-gru         one step of a GRU-like cell that carries its state: inputs
                         x [batch, 64], state [batch, 256], step (int64 scalar, added as
                         a sinusoid); outputs y [batch, 32], state_out, step_out (int64)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is in the default domain from opset 17


@dataclass(frozen=True)
class SelectionModel:
    name: str
    #: what the model is, for the table
    description: str
    #: the input a device would measure on (shipped as the bundle's ``bootstrap.npz``)
    input_name: str
    input_shape: tuple[int, ...]
    build: Callable[[Path], Path]
    #: the model's other inputs (state, scalars), if it has any
    extra: Callable[[np.random.Generator], dict[str, np.ndarray]] | None = None

    def feeds(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        feeds = {self.input_name: rng.standard_normal(self.input_shape).astype(np.float32)}
        if self.extra is not None:
            feeds.update(self.extra(rng))
        return feeds


class _Graph:
    """Nodes and initializers under construction, with fresh names."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, dtype=np.float32), "s")

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, *, stride: int = 1, group: int = 1) -> str:
        """Conv with He-initialised weights (std sqrt(2 / fan_in)) and a zero bias."""
        fan_in = (cin // group) * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * math.sqrt(2.0 / fan_in)
        b = np.zeros(cout, dtype=np.float32)
        pad = k // 2
        return self.op(
            "Conv",
            [x, self.const(w.astype(np.float32)), self.const(b, "b")],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            group=group,
        )

    def linear(self, x: str, din: int, dout: int, *, gain: float = 1.0) -> str:
        """MatMul + Add with weights of std gain / sqrt(din) and a small bias."""
        w = self.rng.standard_normal((din, dout)) * (gain / math.sqrt(din))
        b = self.rng.standard_normal(dout) * 0.01
        h = self.op("MatMul", [x, self.const(w.astype(np.float32))])
        return self.op("Add", [h, self.const(b.astype(np.float32), "b")])

    def head(self, x: str, channels: int, classes: int) -> str:
        """Global average pool, flatten, FC."""
        flat = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        return self.linear(flat, channels, classes)

    def save(
        self, path: Path, name: str, x: onnx.ValueInfoProto, y_name: str, y_shape: list[str | int]
    ) -> Path:
        return self.save_many(path, name, [x], [(y_name, "y", TensorProto.FLOAT, y_shape)])

    def save_many(
        self,
        path: Path,
        name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[tuple[str, str, int, list[str | int]]],
    ) -> Path:
        """The graph with ``inputs`` and ``outputs`` (tensor, output name, element type,
        shape), checked and saved to ``path``."""
        declared = []
        for tensor, out_name, elem, shape in outputs:
            self.nodes.append(helper.make_node("Identity", [tensor], [out_name]))
            declared.append(helper.make_tensor_value_info(out_name, elem, shape))
        graph = helper.make_graph(self.nodes, name, inputs, declared, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path


def _resnet18(path: Path, size: int = 128) -> Path:
    g = _Graph(seed=18)
    # 7x7/2 stem + 3x3/2 max pool
    h = g.op("Relu", [g.conv("image", 3, 64, 7, stride=2)])
    h = g.op("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            branch = g.op("Relu", [g.conv(h, cin, cout, 3, stride=stride)])
            branch = g.conv(branch, cout, cout, 3)
            shortcut = h if (stride, cin) == (1, cout) else g.conv(h, cin, cout, 1, stride=stride)
            # x + f(x) doubles the variance; 1/sqrt(2) keeps it steady over 8 blocks
            added = g.op("Add", [shortcut, branch])
            h = g.op("Relu", [g.op("Mul", [added, g.scalar(math.sqrt(0.5))])])
            cin = cout
    logits = g.head(h, 512, 1000)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])
    return g.save(path, "resnet18_like", x, logits, ["batch", 1000])


def _depthwise_cnn(path: Path, size: int = 160) -> Path:
    g = _Graph(seed=6)
    h = g.op("Relu", [g.conv("image", 3, 32, 3, stride=2)])
    cin = 32
    for cout, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]:
        h = g.op("Relu", [g.conv(h, cin, cin, 3, stride=stride, group=cin)])  # depthwise
        h = g.op("Relu", [g.conv(h, cin, cout, 1)])  # pointwise
        cin = cout
    logits = g.head(h, 512, 1000)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])
    return g.save(path, "depthwise_cnn", x, logits, ["batch", 1000])


def _layer_norm(g: _Graph, x: str, d: int) -> str:
    scale = g.const(np.ones(d, dtype=np.float32), "ln_scale")
    bias = g.const(np.zeros(d, dtype=np.float32), "ln_bias")
    return g.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=1e-5)


def _heads(g: _Graph, x: str, seq: int, heads: int, dh: int, perm: list[int]) -> str:
    """[batch, seq, heads * dh] -> [batch, heads, seq, dh] (``perm`` [0, 2, 1, 3]) or
    [batch, heads, dh, seq] (``perm`` [0, 2, 3, 1], for K transposed)."""
    shape = g.const(np.array([-1, seq, heads, dh], dtype=np.int64), "shape")
    return g.op("Transpose", [g.op("Reshape", [x, shape])], perm=perm)


def _encoder_layer(g: _Graph, x: str, *, seq: int, d: int, heads: int, ffn: int) -> str:
    dh = d // heads
    n = _layer_norm(g, x, d)
    q = _heads(g, g.linear(n, d, d), seq, heads, dh, [0, 2, 1, 3])
    k_t = _heads(g, g.linear(n, d, d), seq, heads, dh, [0, 2, 3, 1])
    v = _heads(g, g.linear(n, d, d), seq, heads, dh, [0, 2, 1, 3])
    scores = g.op("MatMul", [q, k_t])
    scores = g.op("Mul", [scores, g.scalar(1.0 / math.sqrt(dh))])
    attention = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    merged = g.op("Transpose", [attention], perm=[0, 2, 1, 3])
    merged = g.op("Reshape", [merged, g.const(np.array([-1, seq, d], dtype=np.int64), "shape")])
    h = g.op("Add", [x, g.linear(merged, d, d)])
    # FFN with the exact (Erf) GELU: 0.5 x (1 + erf(x / sqrt 2))
    up = g.linear(_layer_norm(g, h, d), d, ffn, gain=math.sqrt(2.0))
    erf = g.op("Erf", [g.op("Mul", [up, g.scalar(1.0 / math.sqrt(2.0))])])
    one = g.scalar(1.0)
    half = g.scalar(0.5)
    gelu = g.op("Mul", [g.op("Mul", [up, half]), g.op("Add", [erf, one])])
    return g.op("Add", [h, g.linear(gelu, ffn, d)])


def _transformer(path: Path, seq: int = 64, d: int = 256) -> Path:
    g = _Graph(seed=4)
    h = "tokens"
    for _ in range(4):
        h = _encoder_layer(g, h, seq=seq, d=d, heads=4, ffn=1024)
    out = _layer_norm(g, h, d)
    x = helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", seq, d])
    return g.save(path, "transformer_encoder", x, out, ["batch", seq, d])


def _tiny_mlp(path: Path) -> Path:
    g = _Graph(seed=16)
    h = g.op("Relu", [g.linear("x", 16, 64, gain=math.sqrt(2.0))])
    h = g.op("Relu", [g.linear(h, 64, 64, gain=math.sqrt(2.0))])
    out = g.linear(h, 64, 4)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    return g.save(path, "tiny_mlp", x, out, ["batch", 4])


def _dynamic_cnn(path: Path) -> Path:
    """Height and width dynamic: what a detector fed frames of any size looks like."""
    g = _Graph(seed=7)
    h = g.op("Relu", [g.conv("image", 3, 32, 3, stride=2)])
    cin = 32
    for cout, stride in [(64, 2), (64, 1), (128, 2), (128, 1), (256, 2)]:
        h = g.op("Relu", [g.conv(h, cin, cout, 3, stride=stride)])
        cin = cout
    logits = g.head(h, 256, 100)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    return g.save(path, "dynamic_cnn", x, logits, ["batch", 100])


def _stateful_gru(path: Path, d_in: int = 64, d_h: int = 256, d_out: int = 32) -> Path:
    """One step of a GRU-like sequence model that carries its state: inputs ``x``
    [batch, 64], ``state`` [batch, 256] and ``step`` (an int64 scalar, the position: a
    sinusoid of it is added to the state); outputs ``y``, ``state_out`` and ``step_out``
    (step + 1). The caller feeds the state and step back for the next frame."""
    g = _Graph(seed=12)
    t = g.op("Cast", ["step"], to=TensorProto.FLOAT)
    freqs = np.exp(-np.linspace(0.0, 6.0, d_h)).astype(np.float32)
    phase = g.op("Sin", [g.op("Mul", [t, g.const(freqs, "freq")])])
    h = g.op("Add", ["state", g.op("Mul", [phase, g.scalar(0.1)])])

    def gate(act: str, hidden: str) -> str:
        a = g.linear("x", d_in, d_h)
        b = g.linear(hidden, d_h, d_h)
        return g.op(act, [g.op("Add", [a, b])])

    z = gate("Sigmoid", h)
    r = gate("Sigmoid", h)
    n = gate("Tanh", g.op("Mul", [r, h]))
    one_minus_z = g.op("Sub", [g.scalar(1.0), z])
    h_next = g.op("Add", [g.op("Mul", [one_minus_z, n]), g.op("Mul", [z, h])])
    y = g.linear(h_next, d_h, d_out)
    step_next = g.op("Add", ["step", g.const(np.array(1, dtype=np.int64), "one")])
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", d_in]),
        helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", d_h]),
        helper.make_tensor_value_info("step", TensorProto.INT64, []),
    ]
    outputs: list[tuple[str, str, int, list[str | int]]] = [
        (y, "y", TensorProto.FLOAT, ["batch", d_out]),
        (h_next, "state_out", TensorProto.FLOAT, ["batch", d_h]),
        (step_next, "step_out", TensorProto.INT64, []),
    ]
    return g.save_many(path, "stateful_gru", inputs, outputs)


def _gru_extra(rng: np.random.Generator) -> dict[str, np.ndarray]:
    state = np.tanh(rng.standard_normal((1, 256))).astype(np.float32)
    return {"state": state, "step": np.array(17, dtype=np.int64)}


def catalogue() -> list[SelectionModel]:
    """The benchmark's models, in the order they are measured."""
    return [
        SelectionModel(
            "resnet18-like",
            "ResNet-18 shape, 64-512 ch, FC 1000",
            "image",
            (1, 3, 128, 128),
            _resnet18,
        ),
        SelectionModel(
            "depthwise-cnn",
            "3x3/2 conv + 6 depthwise-separable blocks, FC 1000",
            "image",
            (1, 3, 160, 160),
            _depthwise_cnn,
        ),
        SelectionModel(
            "transformer-encoder",
            "4 layers, d 256, 4 heads, FFN 1024, seq 64",
            "tokens",
            (1, 64, 256),
            _transformer,
        ),
        SelectionModel("tiny-mlp", "16 -> 64 -> 64 -> 4", "x", (1, 16), _tiny_mlp),
        SelectionModel(
            "dynamic-cnn",
            "6 convs 3x3, height and width dynamic, FC 100",
            "image",
            (1, 3, 120, 160),
            _dynamic_cnn,
        ),
        SelectionModel(
            "stateful-gru",
            "GRU step, state 256 carried in and out, int64 scalar step",
            "x",
            (1, 64),
            _stateful_gru,
            extra=_gru_extra,
        ),
    ]


__all__ = ["SelectionModel", "catalogue"]
