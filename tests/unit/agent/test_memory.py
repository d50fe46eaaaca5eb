"""What the fit rule is fed (``agent.deployment.memory``): a bundle's declared memory,
read from its real ``edgefleet.json``, and the resident memory grown since a reading."""

from __future__ import annotations

from pathlib import Path

from agent.deployment.memory import declared_memory, grown_since, process_rss
from model_store import build_bundle
from tests.support.onnx_models import affine_model


def _bundle(tmp_path: Path, name: str, serving: dict[str, int] | None) -> Path:
    src = affine_model(tmp_path / f"{name}-src" / "model.onnx")
    out = tmp_path / name
    build_bundle(src, out, name=name, version="1.0", serving=serving)
    return out


def test_the_declared_memory_comes_from_the_bundle_metadata(tmp_path: Path) -> None:
    assert declared_memory(_bundle(tmp_path, "big", {"memory_bytes": 3 << 20})) == 3 << 20
    assert declared_memory(_bundle(tmp_path, "plain", None)) is None
    assert declared_memory(_bundle(tmp_path, "other", {"threads": 2})) is None
    assert declared_memory(tmp_path / "missing") is None  # unreadable: nothing declared


def test_memory_grown_is_never_negative_and_unknown_without_a_first_reading() -> None:
    before = process_rss()
    assert before is not None and before > 0
    assert grown_since(None) is None
    assert grown_since(before + (1 << 50)) == 0
    grown = grown_since(before)
    assert grown is not None and grown >= 0
