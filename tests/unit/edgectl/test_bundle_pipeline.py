"""``edgectl bundle sign|build`` of a pipeline spec (``NAME.pipeline.json``): a bundle of
framework ``pipeline``, signed like any other; a backend pin is a one-line exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgectl.cli import main
from model_store import load_metadata, load_public_key, verify_bundle, write_keypair

SPEC = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
    "steps": [{"name": "det", "model": "det", "version": "1.0.0", "inputs": {"x": "input/x"}}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 4], "from": "det/y"}],
}


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "ocr.pipeline.json"
    path.write_text(json.dumps(SPEC))
    return path


def test_sign_a_pipeline_spec(tmp_path: Path) -> None:
    key, pub = write_keypair(tmp_path / "keys", "release")
    out = tmp_path / "bundle"
    argv = ["bundle", "sign", str(_spec(tmp_path)), "--name", "ocr", "--version", "1.0"]
    assert main([*argv, "--out", str(out), "--key", str(key)]) == 0
    metadata = load_metadata(out)
    assert (metadata.framework, metadata.model_file) == ("pipeline", "ocr.pipeline.json")
    manifest = verify_bundle(out, [load_public_key(pub)])
    assert "ocr.pipeline.json" in {f.path for f in manifest.files}


def test_a_pipeline_with_a_pin_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bundle", "build", str(_spec(tmp_path)), "--name", "ocr", "--version", "1.0"]
    code = main(
        [*argv, "--out", str(tmp_path / "b"), "--pin", "onnxruntime:CPUExecutionProvider:f32"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a pipeline has no backend to select" in err[0]
