"""The health gate before commit, on real ONNX Runtime runners and models built in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.deployment.cache_gc import collect_garbage
from agent.deployment.gate import BOOTSTRAP_FILENAME, bootstrap_inputs, health_gate
from agent.errors import HealthGateFailed
from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from model_store import build_bundle, load_metadata
from tests.support.onnx_models import affine_model, bool_input_model, two_input_model


def _runner(tmp_path: Path, build: Any, *, extra: list[Path] | None = None) -> tuple[Any, Path]:
    src = build(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    build_bundle(src, out, name="m", version="1", extra_files=extra or [])
    runner = OnnxRuntimeRunner()
    runner.load(out, load_metadata(out))
    return runner, out


@pytest.mark.parametrize("build", [two_input_model, bool_input_model, affine_model])
def test_generated_inputs_pass_for_dynamic_int64_and_bool_inputs(
    tmp_path: Path, build: Any
) -> None:
    runner, bundle = _runner(tmp_path, build)
    p50 = health_gate(runner, bundle, runs=3)
    assert p50 > 0
    inputs = bootstrap_inputs(runner, bundle)
    assert {s.name: s.dtype for s in runner.inputs} == {k: v.dtype for k, v in inputs.items()}


def test_non_finite_outputs_fail_the_gate(tmp_path: Path) -> None:
    runner, bundle = _runner(tmp_path, lambda p: two_input_model(p, weight=float("nan")))
    with pytest.raises(HealthGateFailed, match="output 'y' is not finite"):
        health_gate(runner, bundle)


def test_a_shipped_bootstrap_input_is_used(tmp_path: Path) -> None:
    # y = x * 2 + 1: a bootstrap input of 3e38 overflows float32 to infinity; the
    # generated input (small random values) would pass, so failing proves the file is used
    npz = tmp_path / BOOTSTRAP_FILENAME
    np.savez(npz, x=np.full((2, 4), 3e38, dtype=np.float32))
    runner, bundle = _runner(tmp_path, affine_model, extra=[npz])
    assert bootstrap_inputs(runner, bundle)["x"].shape == (2, 4)
    with pytest.raises(HealthGateFailed, match="not finite"):
        health_gate(runner, bundle)


def test_a_bootstrap_input_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    npz = tmp_path / BOOTSTRAP_FILENAME
    np.savez(npz, x=np.zeros((2, 4), dtype=np.float64))
    runner, bundle = _runner(tmp_path, affine_model, extra=[npz])
    with pytest.raises(HealthGateFailed, match=r"does not fit the model.*dtype float64"):
        health_gate(runner, bundle)


def test_unreadable_bootstrap_file_is_refused(tmp_path: Path) -> None:
    npz = tmp_path / BOOTSTRAP_FILENAME
    npz.write_bytes(b"not a zip")
    runner, bundle = _runner(tmp_path, affine_model, extra=[npz])
    with pytest.raises(HealthGateFailed, match="cannot be read"):
        health_gate(runner, bundle)


def test_latency_bound_relative_to_the_previous_version(tmp_path: Path) -> None:
    runner, bundle = _runner(tmp_path, two_input_model)
    p50 = health_gate(runner, bundle, runs=3)
    # a baseline below zero: no run can be within 1.5x of it
    with pytest.raises(HealthGateFailed, match=r"exceeds 1\.5x the previous"):
        health_gate(runner, bundle, runs=3, baseline_p50_ms=-1.0, max_latency_ratio=1.5)
    # a generous bound passes; no ratio configured: no bound at all
    assert health_gate(runner, bundle, runs=3, baseline_p50_ms=p50 * 100, max_latency_ratio=2)
    assert health_gate(runner, bundle, runs=3, baseline_p50_ms=-0.5)


def test_cache_gc_keeps_active_previous_and_newest(tmp_path: Path) -> None:
    import os

    root = tmp_path / "models"
    digests = [f"{i:x}" * 64 for i in range(1, 7)]
    for age, digest in enumerate(digests):
        (root / digest).mkdir(parents=True)
        os.utime(root / digest, (1000 + age, 1000 + age))
    (root / "not-a-digest").mkdir()
    keep = {digests[0], digests[1]}  # the oldest two are the active and the previous
    removed = collect_garbage(root, keep=keep, max_versions=3)
    assert sorted(removed) == sorted(digests[2:5])
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [digests[0], digests[1], digests[5], "not-a-digest"]
    )
    assert collect_garbage(root, keep=keep, max_versions=3) == []
    assert collect_garbage(tmp_path / "none", keep=set(), max_versions=1) == []


def test_prune_staging_removes_abandoned_partial_downloads(tmp_path: Path) -> None:
    from agent.deployment.cache_gc import prune_staging

    root = tmp_path / "staging"
    (root / ("a" * 64)).mkdir(parents=True)
    (root / ("a" * 64) / "model.onnx.part").write_bytes(b"half")
    (root / ("b" * 64)).mkdir()
    (root / ("c" * 64)).symlink_to(tmp_path)  # never followed: the link goes, not its target
    assert sorted(prune_staging(root, keep={"b" * 64})) == ["a" * 64, "c" * 64]
    assert [p.name for p in root.iterdir()] == ["b" * 64] and tmp_path.is_dir()
    assert prune_staging(tmp_path / "none", keep=set()) == []
