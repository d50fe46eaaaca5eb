"""The accuracy guard (``agent.selection.guard``) on outputs: several input sets, error
relative to the reference's scale with an absolute floor, top-k agreement."""

from __future__ import annotations

import math

import numpy as np

from agent.selection.guard import ABS_FLOOR, as_input_sets, compare_outputs


def _sets(*arrays: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [{"y": a} for a in arrays]


def test_an_all_zero_reference_is_judged_against_the_floor_not_divided_by_zero() -> None:
    zeros = np.zeros((1, 1, 8, 8), np.float32)
    tiny = np.full_like(zeros, 2.3e-9)  # what OpenVINO gave a detector on a 1x1 input
    error, why = compare_outputs({"y": zeros}, {"y": tiny})
    assert math.isfinite(error) and why is None
    assert error == np.float64(np.float32(2.3e-9)) / ABS_FLOOR
    error, why = compare_outputs({"y": zeros}, {"y": np.full_like(zeros, 1e-3)})
    assert math.isfinite(error) and why is not None and "over 1.00%" in why


def test_every_input_set_is_judged_and_the_worst_is_reported() -> None:
    rng = np.random.default_rng(3)
    refs = _sets(*(rng.normal(size=(2, 5)) for _ in range(4)))
    got = [{"y": r["y"].copy()} for r in refs]
    got[0]["y"] += 1e-4  # fine on the first (timing) set ...
    got[2]["y"][1, 3] += 0.2  # ... off by far more on the third
    error, why = compare_outputs(refs, got)
    scale = max(float(np.abs(r["y"]).max()) for r in refs)
    assert math.isclose(error, 0.2 / scale, rel_tol=1e-6)
    assert why is not None and "input set 3 of 4" in why and "'y'" in why
    first, why_first = compare_outputs(refs[:1], got[:1])
    assert why_first is None and first < 0.01


def test_topk_agreement_is_checked_only_when_asked() -> None:
    ref = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 2.001]], np.float32)
    got = ref.copy()
    got[1, 2], got[1, 3] = 2.001, 2.0  # within 1% of the scale, but the argmax moves
    assert compare_outputs({"y": ref}, {"y": got})[1] is None
    _, why = compare_outputs({"y": ref}, {"y": got}, topk=1)
    assert why is not None and "top-1" in why
    assert compare_outputs({"y": ref}, {"y": got}, topk=2)[1] is None  # same top-2 set


def test_a_tie_in_the_reference_decides_nothing() -> None:
    ref = np.array([[1.0, 1.0, 0.0]], np.float32)
    got = np.array([[0.9999, 1.0, 0.0]], np.float32)
    assert compare_outputs({"y": ref}, {"y": got}, topk=1)[1] is None


def test_mismatches_are_out_of_tolerance_with_the_set_named() -> None:
    refs = _sets(np.ones(3), np.ones(3))
    assert compare_outputs(refs, _sets(np.ones(3), np.ones(4)))[1] == (
        "output 'y' shape [4] != [3] on input set 2 of 2"
    )
    ints = [{"n": np.arange(3)}]
    assert "differs" in str(compare_outputs(ints, [{"n": np.arange(3) + 1}])[1])
    nan = compare_outputs({"y": np.ones(2)}, {"y": np.array([1.0, np.nan])})
    assert nan[0] == math.inf and "not finite" in str(nan[1])


def test_one_set_or_several() -> None:
    one = {"x": np.zeros(1)}
    assert as_input_sets(one) == [one]
    assert as_input_sets([one, one]) == [one, one]
