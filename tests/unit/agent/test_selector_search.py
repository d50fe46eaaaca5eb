"""Champion/challenger selection: one candidate loaded beside the champion at a time,
the margin, the budget (a ~50 MB model within 5 s), re-selection on demand, and the
plain-default variants."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.deployment.gate import bootstrap_inputs
from agent.deployment.loading import load_runner
from agent.runners import available_runners
from agent.selection import (
    MARGIN_PCT,
    Measurement,
    SelectionCache,
    SelectionSettings,
    Selector,
    displaces,
)
from agent.selection import selector as selector_module
from agent.selection.measure import Timing
from hw_profiles import CandidateSpec, plain_defaults
from model_store import build_bundle
from tests.support.onnx_models import table_model
from tests.support.selection import ORT, OV, det_bundle, select, selector_for

ORT_T1 = CandidateSpec("onnxruntime", "CPUExecutionProvider", "f32", threads=1, variant="t1")
OV_DEFAULT = CandidateSpec("openvino", "CPU", "f32", hint="", variant="default")
needs_openvino = pytest.mark.skipif(
    "openvino" not in available_runners(), reason="OpenVINO is not installed"
)


def test_a_challenger_must_beat_the_champion_by_the_margin() -> None:
    champion = Measurement("a", p50_ms=1.0)
    assert not displaces(champion, Measurement("b", p50_ms=1.0 - MARGIN_PCT / 200), MARGIN_PCT)
    assert displaces(champion, Measurement("b", p50_ms=1.0 - MARGIN_PCT / 50), MARGIN_PCT)
    assert not displaces(champion, Measurement("b", p50_ms=0.1, excluded="inaccurate"), 3.0)
    assert displaces(Measurement("a"), Measurement("b", p50_ms=5.0), 3.0)  # a is untimed


def test_plain_default_variants_are_added_with_their_own_keys() -> None:
    profile = [OV, ORT, CandidateSpec("openvino", "GPU", "f16")]
    got = plain_defaults(profile, {"physical_cores": 4})
    assert [c.key for c in got[3:]] == [
        "openvino:CPU:f32+default",
        "onnxruntime:CPUExecutionProvider:f32+t1",
    ]
    assert got[3].hint == "" and got[4].threads == 1
    # one core: a single thread is ORT's default already; listed once only
    assert [c.key for c in plain_defaults([ORT], {"physical_cores": 1})] == [ORT.key]
    assert plain_defaults(got, {"physical_cores": 4}) == got


@needs_openvino
def test_candidates_are_loaded_one_at_a_time_beside_the_champion(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    loaded: list[Any] = []
    peak = 0

    def load(spec: Any) -> Any:
        nonlocal peak
        runner = load_runner(bundle, expected_name="det", expected_version="1", spec=spec)
        close = runner.close

        def closing() -> None:
            if runner in loaded:
                loaded.remove(runner)
            close()

        runner.close = closing  # type: ignore[method-assign]
        loaded.append(runner)
        peak = max(peak, len(loaded))
        return runner

    selector = selector_for(tmp_path, OV, ORT, ORT_T1, OV_DEFAULT)
    selector.settings = replace(selector.settings, budget_s=1.5)
    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("onnxruntime", "openvino"),
        load=load,
        inputs_for=lambda runner: bootstrap_inputs(runner, bundle),
    )
    try:
        assert peak == 2 and loaded == [selection.runner]
        figures = {m.key: m for m in selection.measurements}
        assert set(figures) == {OV.key, ORT.key, ORT_T1.key, OV_DEFAULT.key}
        for m in figures.values():  # on a busy box the budget may not reach the last one
            assert (m.excluded is None and m.p50_ms and m.runs >= 1) or (
                m.excluded is not None and m.excluded.startswith("not measured: the selection")
            )
        assert f"{MARGIN_PCT:g}% faster to displace it" in selection.reason
    finally:
        selection.runner.close()


def test_the_budget_holds_for_a_50_mb_model(tmp_path: Path) -> None:
    src = table_model(tmp_path / "src" / "model.onnx", rows=12_500_000)  # 50 MB of weights
    bundle = tmp_path / "bundle"
    build_bundle(src, bundle, name="det", version="1")
    specs = [ORT, ORT_T1, *([OV, OV_DEFAULT] if "openvino" in available_runners() else [])]
    selector = Selector(
        profile="test",
        candidates=specs,
        fingerprint="fp",
        runtimes={},
        cache=SelectionCache(tmp_path / "data"),
    )
    assert selector.settings.budget_s == 5.0  # the default
    started = time.monotonic()
    selection, _ = select(selector, bundle)
    wall = time.monotonic() - started
    try:
        assert selection.elapsed_s <= selector.settings.budget_s + 0.25 and wall <= 5.5
        timed = [m for m in selection.measurements if m.p50_ms is not None]
        assert len(timed) >= 2
    finally:
        selection.runner.close()


def test_a_spent_budget_leaves_the_rest_unmeasured(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    selector = selector_for(tmp_path, ORT, ORT_T1)
    selector.settings = replace(selector.settings, budget_s=0.0)
    selection, loads = select(selector, bundle)
    try:
        assert loads == [ORT.key] and selection.chosen == ORT.key
        t1 = next(m for m in selection.measurements if m.key == ORT_T1.key)
        assert t1.excluded == "not measured: the selection budget (0 s) was spent"
    finally:
        selection.runner.close()


def test_forget_makes_the_next_selection_measure_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what is tested is the cache, not the timing: the duel is a stub, and the budget is
    # one no load on a busy box exhausts (a choice the budget cut short is not cached)
    def duel(candidates: Any, *_: Any, **__: Any) -> dict[str, Timing]:
        return {k: Timing(1.0, 1.0, 10, (1.0,) * 4) for k in candidates}

    monkeypatch.setattr(selector_module, "time_interleaved", duel)
    bundle = det_bundle(tmp_path)
    first, _ = select(selector_for(tmp_path, ORT, ORT_T1, budget_s=60.0), bundle)
    first.runner.close()
    assert not first.cached and all(m.excluded is None for m in first.measurements)
    selector = selector_for(tmp_path, ORT, ORT_T1, budget_s=60.0)
    assert selector.forget("d" * 64) == 1 and selector.forget("d" * 64) == 0
    again, loads = select(selector, bundle)
    try:
        assert not again.cached and sorted(loads) == sorted([ORT.key, ORT_T1.key])
    finally:
        again.runner.close()


def test_settings_default_to_a_5_s_budget_and_a_3_pct_margin() -> None:
    settings = SelectionSettings()
    assert (settings.budget_s, settings.margin_pct) == (5.0, MARGIN_PCT) == (5.0, 3.0)


def test_a_budget_spent_during_the_first_pair_keeps_the_reference(tmp_path: Path) -> None:
    bundle = det_bundle(tmp_path)
    selector = selector_for(tmp_path, ORT, ORT_T1)
    selector.settings = replace(selector.settings, budget_s=0.8)

    def load(spec: Any) -> Any:
        runner = load_runner(bundle, expected_name="det", expected_version="1", spec=spec)
        if spec.key == ORT_T1.key:
            time.sleep(0.9)  # a slow load: the budget is gone before the pair is timed
        return runner

    selection = selector.select(
        bundle_digest="d" * 64,
        runtimes=("onnxruntime",),
        load=load,
        inputs_for=lambda runner: bootstrap_inputs(runner, bundle),
    )
    try:
        assert selection.chosen == ORT.key and selection.elapsed_s < 1.5
        t1 = next(m for m in selection.measurements if m.key == ORT_T1.key)
        assert t1.excluded == "not measured: the selection budget (0.8 s) was spent"
        assert selection.reason.startswith("the first accurate candidate: not measured")
    finally:
        selection.runner.close()
