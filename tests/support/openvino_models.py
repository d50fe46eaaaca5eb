"""Small real OpenVINO IR models (``.xml`` + ``.bin``) converted in code from ONNX models."""

from __future__ import annotations

from pathlib import Path

import openvino as ov

from tests.support.onnx_models import two_input_model


def ir_from_onnx(onnx_path: Path, xml_path: Path) -> Path:
    """Convert an ONNX model to IR at ``xml_path`` (weights beside it, same stem, ``.bin``),
    kept in f32 (``compress_to_fp16=False``) so outputs equal the ONNX model's."""
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path


def two_input_ir(xml_path: Path, *, weight: float = 0.5) -> tuple[Path, Path]:
    """``two_input_model`` as an IR (x float32 [?, 4], ids int64 [?] -> y, n).

    Returns ``(xml path, source onnx path)``; the ONNX source is written beside the
    destination directory (``<parent>/onnx/<stem>.onnx``) so a directory holding the IR
    stays IR-only.
    """
    onnx_path = two_input_model(
        xml_path.parent.parent / "onnx" / f"{xml_path.stem}.onnx", weight=weight
    )
    return ir_from_onnx(onnx_path, xml_path), onnx_path
