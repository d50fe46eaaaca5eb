"""A model built in code, bundled and loaded on ONNX Runtime, as the agent serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.serving import LoadedModel
from model_store import build_bundle, load_metadata


def loaded_model(tmp_path: Path, build: Any, name: str, version: str = "1.2") -> LoadedModel:
    """``build(path)`` writes the ONNX model; it is bundled under ``tmp_path/name-version``."""
    src = build(tmp_path / f"{name}-{version}" / "src" / "model.onnx")
    out = tmp_path / f"{name}-{version}" / "bundle"
    build_bundle(src, out, name=name, version=version)
    runner = OnnxRuntimeRunner()
    runner.load(out, load_metadata(out))
    return LoadedModel(name, version, "a" * 64, out, runner)
