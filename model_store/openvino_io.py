"""Read an OpenVINO IR model's inputs and outputs (``model.xml`` + ``model.bin``).

OpenVINO is imported only when an IR is read, and guarded: without it (or with a broken
install) reading an IR is a one-line ``BundleError``, and everything else of
``model_store`` works. Every error from OpenVINO is turned into ``BundleError`` here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from model_store.errors import BundleError
from model_store.metadata import TensorSpec, ir_weights_file

logger = logging.getLogger(__name__)

UNNAMED_DIM = "?"
UNKNOWN_RANK = "..."

# OpenVINO element type names -> numpy dtype names (as ``onnx_io`` writes them). Types that
# numpy cannot hold exactly (bf16, u4, nf4, f8...) keep OpenVINO's name.
_DTYPES: dict[str, str] = {
    "boolean": "bool",
    "f16": "float16",
    "f32": "float32",
    "f64": "float64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "string": "object",
}


def ov_error_line(exc: BaseException, limit: int = 300) -> str:
    """OpenVINO's multi-line ``Exception from src/...`` text as one line: its last message."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception from ")]
    line = lines[-1] if lines else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _core() -> Any:
    try:
        import openvino
    except Exception as exc:  # ImportError, or a broken install failing to load its libraries
        raise BundleError(
            f"OpenVINO is not installed or cannot load ({ov_error_line(exc)}); "
            "it is needed to read an OpenVINO IR (pip install openvino)"
        ) from exc
    return openvino.Core()


def _shape(partial_shape: Any) -> list[int | str]:
    if partial_shape.rank.is_dynamic:
        return [UNKNOWN_RANK]
    dims: list[int | str] = []
    for dim in partial_shape:
        if dim.is_static:
            dims.append(int(dim.get_length()))
        elif dim.get_min_length() <= 0 and dim.get_max_length() < 0:
            dims.append(UNNAMED_DIM)
        else:
            dims.append(str(dim))  # a bounded dynamic dim, e.g. "1..8"
    return dims


def _spec(port: Any, kind: str, index: int) -> TensorSpec:
    names = port.get_names()
    if not names:
        raise BundleError(f"{kind} #{index} of the OpenVINO model has no tensor name")
    element = port.get_element_type().get_type_name()
    return TensorSpec(
        name=str(port.get_any_name()),
        dtype=_DTYPES.get(element, element),
        shape=_shape(port.get_partial_shape()),
    )


def read_openvino_io(xml_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of the OpenVINO IR at ``xml_path`` (its ``.bin`` beside it).

    Dynamic dims are ``"?"`` (``"min..max"`` when bounded), unknown rank ``["..."]``: IR
    keeps no dim names. ``BundleError`` if OpenVINO is missing, a file is missing, or the
    IR is not valid (OpenVINO cannot read it, or its weights do not fit the ``.bin``).
    """
    weights = xml_path.with_name(ir_weights_file(xml_path.name))
    if not xml_path.is_file():
        raise BundleError(f"model file not found: {xml_path}")
    if not weights.is_file():
        raise BundleError(
            f"{weights.name} is missing: an OpenVINO IR is {xml_path.name} plus {weights.name}"
        )
    core = _core()
    try:
        model = core.read_model(str(xml_path), str(weights))
        inputs = [_spec(port, "input", i) for i, port in enumerate(model.inputs)]
        outputs = [_spec(port, "output", i) for i, port in enumerate(model.outputs)]
    except BundleError:
        raise
    except Exception as exc:  # OpenVINO raises RuntimeError and its own error types
        raise BundleError(
            f"{xml_path.name} is not a valid OpenVINO IR: {ov_error_line(exc)}"
        ) from exc
    return inputs, outputs
