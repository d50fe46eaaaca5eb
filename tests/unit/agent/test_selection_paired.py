"""A duel decided on per-round paired ratios (``measure.paired_ratios``, ``policy.regrets``,
``policy.displaces``), over a fake clock and fake models: no real timing."""

from __future__ import annotations

import pytest

from agent.selection import MARGIN_PCT, Measurement, displaces, time_interleaved
from agent.selection.measure import paired_ratios
from agent.selection.policy import regrets
from tests.support.busy_box import FakeClock, time_on_a_busy_box

CHAMPION = Measurement("champion", p50_ms=1.0)


def challenger(p50: float = 1.0) -> Measurement:
    return Measurement("challenger", p50_ms=p50)


def test_ratios_pair_the_bursts_of_the_same_round_and_drop_unpaired_ones() -> None:
    # the champion's last round was cut by the hard stop: that round is left out
    assert paired_ratios([1.0, 2.0, 3.0], [2.0, 2.0]) == [0.5, 1.0]
    assert paired_ratios([], [1.0]) == []
    assert paired_ratios([1.0], [0.0]) == []  # never a division by zero


def test_a_steady_ratio_regrets_only_the_slower_side() -> None:
    keep, take = regrets([0.9] * 8)
    assert keep == pytest.approx(1 / 0.9) and take == 1.0
    keep, take = regrets([1.2] * 8)
    assert keep == 1.0 and take == pytest.approx(1.2)


def test_regrets_take_the_quartiles_not_the_worst_round() -> None:
    # one wild round each way (a spell of outside load) does not set the regret
    ratios = [0.3, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0]
    assert regrets(ratios) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("ratio", "wins"),
    [(1.0 - 2 * MARGIN_PCT / 100, True), (1.0 - MARGIN_PCT / 200, False), (1.05, False)],
)
def test_a_steady_ratio_must_beat_the_margin(ratio: float, wins: bool) -> None:
    assert displaces(CHAMPION, challenger(), MARGIN_PCT, [ratio] * 10) is wins


def test_the_ratios_decide_over_the_p50s() -> None:
    # calm p50s favour the champion, but round by round the challenger was faster
    assert displaces(CHAMPION, challenger(1.01), MARGIN_PCT, [0.85] * 10)
    assert not displaces(CHAMPION, challenger(0.5), MARGIN_PCT, [1.0] * 10)
    # without ratios (or only unusable ones) the p50s decide, as before
    assert displaces(CHAMPION, challenger(0.9), MARGIN_PCT, [float("nan")])
    assert not displaces(CHAMPION, challenger(0.99), MARGIN_PCT)


def test_a_pair_that_swaps_places_with_the_load_goes_to_the_cheaper_bad_rounds() -> None:
    # the champion (two threads) is 2% faster when the box is calm and 18% slower when
    # it is busy: keeping it risks 18%, taking the challenger 2%
    rounds = [1.02] * 5 + [0.85] * 5
    assert displaces(CHAMPION, challenger(1.02), MARGIN_PCT, rounds)
    # the other way round: much faster calm, a little slower busy: the challenger wins
    assert displaces(CHAMPION, challenger(), MARGIN_PCT, [0.6] * 5 + [1.02] * 5)
    # noise around a tie keeps the champion: no flip between two runs of one model
    assert not displaces(CHAMPION, challenger(), MARGIN_PCT, [0.98, 1.02] * 5)


def test_a_pair_decided_by_most_rounds_is_not_a_close_call() -> None:
    # the champion (two threads) is 13% faster in six rounds of ten and 25% slower in
    # the four busy ones: its median round beats the margin, so it stays (regrets alone
    # gave it away: keeping it risked 33%, taking the other 13%)
    rounds = [1.13] * 6 + [0.75] * 4
    assert not displaces(CHAMPION, challenger(), MARGIN_PCT, rounds)
    # the same the other way round: the challenger faster in most rounds wins
    assert displaces(CHAMPION, challenger(), MARGIN_PCT, [1 / 1.13] * 6 + [1.33] * 4)


def test_an_excluded_or_untimed_challenger_never_displaces() -> None:
    excluded = Measurement("challenger", p50_ms=0.1, excluded="inaccurate")
    assert not displaces(CHAMPION, excluded, MARGIN_PCT, [0.1] * 10)
    assert not displaces(CHAMPION, Measurement("challenger"), MARGIN_PCT, [0.1] * 10)
    assert displaces(Measurement("champion"), challenger(), MARGIN_PCT, [2.0] * 10)


def test_busy_rounds_that_slow_the_two_thread_candidate_decide_for_the_other() -> None:
    """A two-thread candidate ("pool") is slowed by half when another process takes a
    core, a one-thread one ("single") by a tenth; the box is busy in three rounds of four.
    The calm p50s still report "pool" as the faster (what the runtime costs on a quiet
    box), but serving back to back on this box would see "single" faster: it wins."""
    timings = time_on_a_busy_box()
    pool, single = timings["pool"], timings["single"]
    assert pool.p50_ms < single.p50_ms  # the calm figures
    assert len(pool.bursts_ms) == len(single.bursts_ms) >= 6  # one burst a round each
    ratios = paired_ratios(single.bursts_ms, pool.bursts_ms)
    calm = [r for r in ratios if r == pytest.approx(1.1)]
    assert len(calm) < len(ratios) / 2  # the calm rounds
    assert all(r == pytest.approx(1.21 / 1.5) for r in ratios if r not in calm)
    champion = Measurement("pool", p50_ms=pool.p50_ms)
    assert displaces(champion, Measurement("single", p50_ms=single.p50_ms), MARGIN_PCT, ratios)


@pytest.mark.parametrize(("slower", "rounds"), [(0.100, 2), (0.0015, 4)])
def test_a_clear_gap_stops_after_two_rounds_a_decisive_one_after_four(
    slower: float, rounds: int
) -> None:
    clock = FakeClock()
    timings = time_interleaved(
        {"a": clock.model(0.001), "b": clock.model(slower)},
        {},
        budget_s=5.0,
        cpu_share=1.0,
        min_runs=1,
        clock=clock,
        sleep=lambda s: None,
    )
    assert len(timings["a"].bursts_ms) == len(timings["b"].bursts_ms) == rounds
