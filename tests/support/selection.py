"""Measured selection on real runners: candidate specs, a two-input ``det`` bundle, a
``Selector`` over a cache in a temporary directory, and one selection that records which
candidates were loaded (the unit tests of selection and the alternate-stack child use
them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.deployment.gate import bundle_input_sets
from agent.deployment.loading import load_runner
from agent.selection import SelectionCache, SelectionSettings, Selector
from hw_profiles import CandidateSpec
from model_store import build_bundle
from tests.support.onnx_models import two_input_model

ORT = CandidateSpec(runtime="onnxruntime", device="CPUExecutionProvider", precision="f32")
OV = CandidateSpec(runtime="openvino", device="CPU", precision="f32")
OV_BF16 = CandidateSpec(runtime="openvino", device="CPU", precision="bf16")


def det_bundle(tmp_path: Path, weight: float = 0.5) -> Path:
    src = two_input_model(tmp_path / "src" / "model.onnx", weight=weight)  # dynamic + int64
    out = tmp_path / "bundle"
    build_bundle(src, out, name="det", version="1")
    return out


def selector_for(tmp_path: Path, *specs: CandidateSpec, **settings: Any) -> Selector:
    return Selector(
        profile="test",
        candidates=specs,
        fingerprint="fp",
        runtimes={"onnxruntime": "x"},
        cache=SelectionCache(tmp_path / "data"),
        settings=SelectionSettings(**{"budget_s": 2.0, **settings}),
    )


def select(selector: Selector, bundle: Path, **kw: Any) -> Any:
    """``selector.select`` over ``bundle``; (the selection, the keys loaded in order)."""
    loads: list[str] = []

    def load(spec: Any = None) -> Any:
        loads.append(spec.key)
        return load_runner(bundle, expected_name="det", expected_version="1", spec=spec)

    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("onnxruntime", "openvino"),
        load=load,
        inputs_for=lambda runner: bundle_input_sets(
            runner, bundle, count=selector.settings.guard_sets
        ),
        **kw,
    )
    return selection, loads
