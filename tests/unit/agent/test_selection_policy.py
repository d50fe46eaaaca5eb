"""Selection policy over fake timings, the accuracy guard, the CPU-share timer, the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    time_interleaved,
)
from agent.selection.measure import calm_p50
from tests.support.busy_box import FakeClock, time_on_a_busy_box


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


def test_timer_interleaves_bursts_within_the_cpu_share_and_the_budget() -> None:
    now = [0.0]
    slept: list[float] = []
    order: list[str] = []

    def clock() -> float:
        return now[0]

    ran = [0.0]

    def runner(key: str, seconds: float) -> Any:
        def infer(_: object) -> dict[str, np.ndarray]:
            order.append(key)
            now[0] += seconds
            ran[0] += seconds
            return {}

        return infer

    bursts: list[str] = []

    def sleep(s: float) -> None:
        slept.append(s)
        bursts.append(order[-1])  # whose burst just ended
        now[0] += s

    timings = time_interleaved(
        {"a": runner("a", 0.010), "b": runner("b", 0.020)},
        {},
        budget_s=2.0,
        cpu_share=0.25,
        burst_s=0.05,
        clock=clock,
        sleep=sleep,
    )
    assert timings["a"].p50_ms == pytest.approx(10.0) and timings["b"].p50_ms == pytest.approx(20.0)
    # ~50 ms bursts, each followed by three times as long asleep: running 25% of the time
    assert slept and all(0.14 <= s <= 0.19 for s in slept)
    assert sum(slept) == pytest.approx(3 * ran[0])
    # rounds alternate which candidate goes first, and both get their share of runs
    assert bursts[:6] == ["a", "b", "b", "a", "a", "b"]
    assert timings["a"].runs > timings["b"].runs >= 5
    # the first run of every burst is dropped
    assert timings["a"].runs + timings["b"].runs < order.count("a") + order.count("b")


@pytest.mark.parametrize(("slower", "whole_budget"), [(0.030, False), (0.0105, True)])
def test_a_clear_winner_stops_early_and_a_close_call_gets_the_budget(
    slower: float, whole_budget: bool
) -> None:
    clock = FakeClock()
    time_interleaved(
        {"a": clock.model(0.010), "b": clock.model(slower)},
        {},
        budget_s=5.0,
        cpu_share=1.0,
        clock=clock,
        sleep=lambda s: None,
    )
    assert (clock.now >= 5.0) == whole_budget, clock.now


def test_the_calm_p50_is_over_the_calmest_bursts_holding_a_quarter_of_the_runs() -> None:
    calm, busy = [1.0, 1.1, 1.2], [3.0, 3.1, 3.2]
    assert calm_p50([busy, busy, calm, busy]) == pytest.approx(1.1)  # one burst of four
    assert calm_p50([busy, calm, calm, busy, busy]) == pytest.approx(1.1)  # two of five
    assert calm_p50([[2.0]]) == 2.0
    # a one-run burst (cut short by max_runs) is a quarter of the bursts, not of the runs
    assert calm_p50([[1.0], busy, busy, busy]) == pytest.approx(3.05)
    assert np.isnan(calm_p50([])) and np.isnan(calm_p50([[], []]))


def test_outside_load_that_slows_one_candidate_more_does_not_decide() -> None:
    """A two-thread candidate ("pool") is slowed by half when another process takes a
    core, a one-thread one ("single") by a tenth; the box is busy in three rounds of
    every four. Calm, "pool" is the faster: its calm p50 must be the lower (which one wins
    the duel is for the paired rounds: test_selection_paired)."""
    timings = time_on_a_busy_box()
    assert timings["pool"].p50_ms == pytest.approx(1.0)
    assert timings["single"].p50_ms == pytest.approx(1.1)
    assert timings["pool"].p99_ms == pytest.approx(1.5)  # the tail keeps the busy runs


def test_timer_keeps_min_runs_past_the_budget() -> None:
    now = [0.0]

    def infer(_: object) -> dict[str, np.ndarray]:
        now[0] += 1.0
        return {}

    timings = time_interleaved(
        {"slow": infer}, {}, budget_s=0.0, min_runs=5, clock=lambda: now[0], sleep=lambda s: None
    )
    assert timings["slow"].runs == 5


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


def test_a_hard_stop_ends_timing_short_of_min_runs() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def infer(_: object) -> dict[str, np.ndarray]:
        now[0] += 0.1  # a slow model: 0.1 s a run
        return {}

    timings = time_interleaved(
        {"a": infer, "b": infer},
        {},
        budget_s=0.05,
        cpu_share=1.0,
        min_runs=5,
        hard_s=0.5,
        clock=clock,
        sleep=lambda s: None,
    )
    assert now[0] <= 0.5 + 0.2  # one burst (two runs) may be under way at the stop
    assert timings["a"].runs < 5 and timings["b"].runs < 5


def test_a_burst_ends_at_the_hard_stop() -> None:
    now = [0.0]

    def infer(_: object) -> dict[str, np.ndarray]:
        now[0] += 0.001  # a fast model: a burst of 0.05 s is 50 runs
        return {}

    timings = time_interleaved(
        {"a": infer, "b": infer},
        {},
        budget_s=10.0,
        cpu_share=1.0,
        hard_s=0.175,  # in the middle of the fourth burst
        clock=lambda: now[0],
        sleep=lambda s: None,
    )
    assert now[0] <= 0.175 + 0.001 + 1e-9  # one run past the stop at most, not a burst
    assert timings["a"].runs > 0 and timings["b"].runs > 0


def test_the_pause_after_a_burst_ends_at_the_hard_stop() -> None:
    now = [0.0]

    def infer(_: object) -> dict[str, np.ndarray]:
        now[0] += 0.1
        return {}

    def sleep(s: float) -> None:
        now[0] += s

    time_interleaved(
        {"a": infer, "b": infer},
        {},
        budget_s=0.05,
        cpu_share=0.1,  # a burst of 0.2 s asks for a pause of 1.8 s
        min_runs=5,
        hard_s=0.5,
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert now[0] <= 0.5 + 0.2  # the stop overrun by one burst at most, never by a pause
