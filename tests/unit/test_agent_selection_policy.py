"""Selection policy over fake timings, the accuracy guard, the CPU-share timer, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.selection import (
    Measurement,
    NoCandidate,
    SelectionCache,
    cache_key,
    choose,
    compare_outputs,
    rank,
    time_candidate,
)


def m(key: str, p50: float | None, p99: float | None = None, **kw: object) -> Measurement:
    return Measurement(key=key, p50_ms=p50, p99_ms=p99 if p99 is not None else p50, **kw)  # type: ignore[arg-type]


def test_lowest_p50_wins() -> None:
    choice = choose([m("ort", 2.0), m("ov-f32", 1.0), m("ov-bf16", 0.5)])
    assert choice.key == "ov-bf16" and choice.ranked == ("ov-bf16", "ov-f32", "ort")
    assert "lowest p50" in choice.reason


def test_ties_go_to_p99_then_memory_then_key() -> None:
    a = m("a", 1.00, 3.0, memory_bytes=10)
    b = m("b", 1.01, 2.0, memory_bytes=20)  # within 2%: a tie, b's p99 is lower
    assert choose([a, b]).key == "b" and "p99" in choose([a, b]).reason
    c = m("c", 1.00, 2.0, memory_bytes=5)
    assert choose([b, c]).key == "c"  # same p99 (2.0), c uses less memory
    d = m("d", 1.00, 2.0, memory_bytes=5)
    assert choose([d, c]).key == "c"  # all equal: by key, deterministic
    assert choose([a, m("far", 1.5, 0.1)]).key == "a"  # 50% apart: p50 decides


def test_excluded_and_failed_candidates_never_win() -> None:
    fast_but_wrong = m("bf16", 0.1, excluded="max abs error 3% of the reference's max")
    failed = Measurement(key="npu", excluded="load failed: no NPU")
    assert choose([fast_but_wrong, failed, m("f32", 1.0)]).key == "f32"
    assert [x.key for x in rank([fast_but_wrong, failed])] == []
    with pytest.raises(NoCandidate, match="bf16: max abs error"):
        choose([fast_but_wrong, failed])


def test_guard_tolerance_relative_to_the_reference() -> None:
    ref = {"y": np.array([[10.0, -20.0, 5.0]], dtype=np.float32)}
    close = {"y": ref["y"] + np.float32(0.1)}  # 0.1 / 20 = 0.5%
    far = {"y": ref["y"] + np.float32(0.3)}  # 1.5%
    err, why = compare_outputs(ref, close)
    assert why is None and err == pytest.approx(0.005, rel=1e-3)
    err, why = compare_outputs(ref, far)
    assert why is not None and "over 1.00%" in why and err == pytest.approx(0.015, rel=1e-3)
    assert compare_outputs(ref, far, tolerance=0.02)[1] is None  # a bundle's own tolerance


def test_guard_exact_for_integers_and_strict_on_shape_and_nan() -> None:
    ids = {"n": np.array([1, 2, 3], dtype=np.int64)}
    assert compare_outputs(ids, {"n": np.array([1, 2, 3])})[1] is None
    assert "differs" in (compare_outputs(ids, {"n": np.array([1, 2, 4])})[1] or "")
    ref = {"y": np.ones((2, 2), dtype=np.float32)}
    assert "shape" in (compare_outputs(ref, {"y": np.ones((2, 3), dtype=np.float32)})[1] or "")
    nan = {"y": np.full((2, 2), np.nan, dtype=np.float32)}
    assert "not finite" in (compare_outputs(ref, nan)[1] or "")
    assert "missing" in (compare_outputs(ref, {})[1] or "")


def test_timer_keeps_to_the_cpu_share_and_the_budget() -> None:
    now = [0.0]
    slept: list[float] = []

    def clock() -> float:
        return now[0]

    def infer(_: object) -> dict[str, np.ndarray]:
        now[0] += 0.010  # every run takes 10 ms
        return {"y": np.zeros(1)}

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    timing = time_candidate(
        infer, {}, budget_s=1.0, cpu_share=0.25, warmup=2, clock=clock, sleep=sleep
    )
    assert timing.p50_ms == pytest.approx(10.0) and timing.p99_ms == pytest.approx(10.0)
    # 10 ms of work, then 30 ms of rest: 25% of the thread's time is inference
    assert slept and all(s == pytest.approx(0.030) for s in slept)
    assert 20 <= timing.runs <= 26  # ~1 s / 40 ms per timed run (after 20 ms of warm-up)
    fast = time_candidate(infer, {}, budget_s=0.0, min_runs=5, clock=clock, sleep=sleep)
    assert fast.runs == 5  # the budget never cuts below min_runs


def test_cache_round_trip_and_key(tmp_path: Path) -> None:
    cache = SelectionCache(tmp_path)
    key = cache_key("d" * 64, "fp1", {"openvino": "2026.4", "onnxruntime": "1.31"})
    assert key == "d" * 64 + "|fp1|onnxruntime=1.31,openvino=2026.4"
    assert cache.get(key) is None
    ms = [m("a", 1.0, memory_bytes=3, runs=7), Measurement(key="b", excluded="load failed")]
    cache.put(key, "a", ms)
    assert SelectionCache(tmp_path).get(key) == ("a", ms)  # a new instance: a restart
    assert cache.get(cache_key("d" * 64, "fp2", {})) is None
    (tmp_path / "selection.json").write_text("{not json")
    assert SelectionCache(tmp_path).get(key) is None  # unreadable: ignored
