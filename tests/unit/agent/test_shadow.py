"""Shadow evaluation on the agent: the comparator, the sampler, the gate, and a shadow
running beside a served model (real ONNX Runtime models built in code)."""

from __future__ import annotations

import functools
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from agent.deployment.shadowing import ShadowPeriod
from agent.errors import AgentError
from agent.serving import ServedModels
from agent.serving.agreement import REL_TOLERANCE, compare
from agent.serving.shadow import DUTY, QUEUE_BOUND, Sampler, Shadow, judge
from protocol import (
    SHADOW_GATE_PREFIX,
    ModelAssignment,
    ShadowFigures,
    ShadowSpec,
    ShadowVerdict,
)
from tests.support.loaded import loaded_model
from tests.support.onnx_models import two_input_model
from tests.support.ports import wait_until

# -- the comparator ----------------------------------------------------------------------


def test_equal_outputs_agree_with_zero_deviation() -> None:
    out = {"y": np.array([[0.1, 0.7, 0.2]], np.float32), "n": np.array([4], np.int64)}
    result = compare(out, {k: v.copy() for k, v in out.items()})
    assert result.agrees and result.max_deviation == 0.0 and result.mean_deviation == 0.0
    assert (result.top1_rows, result.top1_equal) == (1, 1)


def test_a_distribution_agrees_on_its_top1_even_when_the_scores_move() -> None:
    served = {"p": np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]], np.float32)}
    shifted = {"p": np.array([[0.2, 0.5, 0.3], [0.5, 0.4, 0.1]], np.float32)}
    result = compare(served, shifted)
    assert result.agrees and (result.top1_rows, result.top1_equal) == (2, 2)
    assert result.max_deviation == pytest.approx(0.3 / 0.8)
    flipped = {"p": np.array([[0.1, 0.8, 0.1], [0.3, 0.6, 0.1]], np.float32)}
    result = compare(served, flipped)
    assert not result.agrees and (result.top1_rows, result.top1_equal) == (2, 1)


def test_a_box_or_logit_output_is_not_judged_by_its_top1() -> None:
    boxes = {"b": np.array([[10.0, 20.0, 30.0, 40.0]], np.float32)}
    moved = {"b": np.array([[1.0, 2.0, 3.0, 40.0]], np.float32)}  # same argmax, far off
    result = compare(boxes, moved)
    assert not result.agrees and result.top1_rows == 0


def test_other_float_outputs_agree_within_the_relative_tolerance() -> None:
    served = {"y": np.array([100.0, -50.0, 0.0], np.float32)}
    close = {"y": served["y"] + np.float32(100.0 * REL_TOLERANCE / 2)}
    far = {"y": served["y"] + np.float32(100.0 * REL_TOLERANCE * 2)}
    assert compare(served, close).agrees
    result = compare(served, far)
    assert not result.agrees and result.max_deviation == pytest.approx(2 * REL_TOLERANCE)


def test_integers_must_be_equal_and_missing_or_reshaped_outputs_disagree() -> None:
    served = {"n": np.array([1, 2, 3], np.int64)}
    assert not compare(served, {"n": np.array([1, 2, 4], np.int64)}).agrees
    assert not compare(served, {}).agrees
    assert not compare(served, {"n": np.array([1, 2], np.int64)}).agrees
    assert not compare({"y": np.ones(3, np.float32)}, {"y": np.array([1, np.nan, 1])}).agrees
    assert compare({"b": np.array([True, False])}, {"b": np.array([True, False])}).agrees
    # a version whose output became text disagrees, it does not raise in the worker
    assert not compare(served, {"n": np.array(["1", "2", "3"])}).agrees
    assert not compare({"s": np.array(["a"])}, {"s": np.array([1])}).agrees


# -- the sampler -------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.2, 0.05, 1 / 3, 1.0])
def test_the_sampler_takes_exactly_its_share_evenly(share: float) -> None:
    sampler = Sampler(share)
    taken = [sampler.take() for _ in range(600)]
    assert sum(taken) == round(600 * share)
    if share == 0.2:
        assert taken[:10] == [False, False, False, False, True] * 2


def test_the_sampler_refuses_a_share_out_of_range() -> None:
    for share in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="sample share"):
            Sampler(share)


# -- the gate ----------------------------------------------------------------------------


def _figures(**kw: object) -> ShadowFigures:
    base: dict[str, object] = {
        "name": "det",
        "version": "2",
        "serving_version": "1",
        "started_at": datetime.now(UTC),
        "duration_s": 10.0,
        "sample": 0.2,
        "compared": 200,
        "agreement_pct": 100.0,
        "shadow_p50_ms": 1.0,
        "shadow_p99_ms": 2.0,
        "serving_p50_ms": 1.0,
        "serving_p99_ms": 2.0,
    }
    return ShadowFigures.model_validate({**base, **kw})


def test_the_gate_passes_agreement_and_latency_within_bounds() -> None:
    spec = ShadowSpec(duration_s=10, sample=0.2, min_agreement_pct=99, max_latency_ratio=1.25)
    judged = judge(_figures(agreement_pct=99.5), spec)
    assert judged.verdict == ShadowVerdict.PASSED and judged.reason is None


def test_the_gate_fails_low_agreement_with_a_one_line_reason() -> None:
    spec = ShadowSpec(duration_s=10, sample=0.2, min_agreement_pct=99)
    judged = judge(_figures(agreement_pct=62.5, errors=3), spec)
    assert judged.verdict == ShadowVerdict.FAILED
    assert (
        judged.reason == f"{SHADOW_GATE_PREFIX} agreement 62.5% < 99% over 200 requests (3 failed)"
    )


def test_the_gate_fails_a_slower_shadow_beyond_ratio_and_floor() -> None:
    spec = ShadowSpec(duration_s=10, sample=0.2, max_latency_ratio=1.25, latency_floor_ms=5.0)
    # 1.5x but only 1 ms slower: under the floor, passes
    assert judge(_figures(shadow_p50_ms=1.5, shadow_p99_ms=3.0), spec).verdict == "passed"
    # a long tail alone (the low-priority worker waiting for the CPU) is not gated
    assert judge(_figures(shadow_p50_ms=1.0, shadow_p99_ms=30.0), spec).verdict == "passed"
    judged = judge(_figures(shadow_p50_ms=40.0, shadow_p99_ms=45.0), spec)
    assert judged.verdict == ShadowVerdict.FAILED
    assert judged.reason is not None and "latency p50 40.00 ms > 1.25x" in judged.reason


def test_a_shadow_that_failed_every_request_fails_even_without_an_agreement_bar() -> None:
    spec = ShadowSpec(duration_s=10, sample=0.2)
    judged = judge(_figures(compared=5, errors=5, agreement_pct=0.0), spec)
    assert judged.verdict == ShadowVerdict.FAILED
    assert judged.reason == f"{SHADOW_GATE_PREFIX} the new version failed on all 5 requests"
    assert judge(_figures(compared=5, errors=4, agreement_pct=20.0), spec).verdict == "passed"


def test_no_traffic_in_the_period_passes_not_judged() -> None:
    spec = ShadowSpec(duration_s=10, sample=0.2, min_agreement_pct=99)
    judged = judge(_figures(compared=0, agreement_pct=None, sampled=0, dropped=0), spec)
    assert judged.verdict == ShadowVerdict.PASSED
    assert judged.reason == "not judged: no traffic"


def test_a_shadow_that_could_not_compare_any_sampled_request_fails() -> None:
    spec = ShadowSpec(duration_s=10, sample=0.2)
    judged = judge(_figures(compared=0, agreement_pct=None, sampled=7, dropped=7), spec)
    assert judged.verdict == ShadowVerdict.FAILED
    assert judged.reason == (
        f"{SHADOW_GATE_PREFIX} none of the 7 sampled requests was compared (all dropped)"
    )


# -- a shadow beside a served model (real ONNX Runtime) -----------------------------------


def _inputs(batch: int = 2) -> dict[str, np.ndarray]:
    x = (np.arange(4 * batch, dtype=np.float32).reshape(batch, 4) / 10 + 0.1).astype(np.float32)
    return {"x": x, "ids": np.arange(batch, dtype=np.int64)}


def _run_shadow(tmp_path: Path, shadow_weight: float, requests: int) -> ShadowFigures:
    models = ServedModels()
    serving = loaded_model(tmp_path, functools.partial(two_input_model, weight=0.5), "s")
    served = models.activate(serving) or serving
    served = models.get("s")
    candidate = loaded_model(
        tmp_path, functools.partial(two_input_model, weight=shadow_weight), "c"
    )
    spec = ShadowSpec(duration_s=60, sample=0.5, min_agreement_pct=99)
    shadow = Shadow(
        name="s",
        version="2",
        serving_version=served.version,
        runner=candidate.runner,
        spec=spec,
        started_at=datetime.now(UTC),
    )
    shadow.start()
    assert models.attach_shadow(shadow) is served
    answers = []
    for i in range(requests):
        with models.use("s") as model:
            answers.append(model.infer(_inputs(1 + i % 3))["y"])
        time.sleep(0.001)  # a paced client: the queue keeps up
    models.detach_shadow(shadow)
    shadow.stop()
    # the answers came from the serving version, whatever the shadow said
    assert all(np.all(a[:, 2] > a[:, 0]) for a in answers)
    models.clear()
    candidate.runner.close()
    return judge(shadow.figures(elapsed_s=1.0), spec)


def test_a_shadow_that_agrees_is_compared_on_the_sampled_share_and_passes(tmp_path: Path) -> None:
    figures = _run_shadow(tmp_path, 0.5, requests=40)
    assert figures.sampled == 20 and figures.compared + figures.dropped == 20
    assert figures.compared > 0 and figures.errors == 0
    assert figures.agreement_pct == 100.0 and figures.top1_agreement_pct is None  # not softmax
    assert figures.max_deviation == 0.0
    assert figures.shadow_p50_ms is not None and figures.serving_p50_ms is not None
    assert figures.verdict == ShadowVerdict.PASSED


def test_a_shadow_that_disagrees_fails_its_gate(tmp_path: Path) -> None:
    figures = _run_shadow(tmp_path, -1.0, requests=40)
    assert figures.compared > 0
    assert figures.agreement_pct == 0.0
    assert figures.max_deviation is not None and figures.max_deviation > 1.0
    assert figures.verdict == ShadowVerdict.FAILED


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    candidate = loaded_model(tmp_path, two_input_model, "c")
    shadow = Shadow(
        name="s",
        version="2",
        serving_version="1",
        runner=candidate.runner,
        spec=ShadowSpec(duration_s=60, sample=1.0),
        started_at=datetime.now(UTC),
    )  # not started: nothing takes from the queue
    inputs = _inputs()
    outputs = candidate.runner.infer(inputs)
    for _ in range(QUEUE_BOUND + 5):
        shadow.offer(inputs, outputs, 0.001)
    figures = shadow.figures(elapsed_s=0.0)
    assert (figures.sampled, figures.dropped, figures.compared) == (QUEUE_BOUND + 5, 5, 0)
    shadow.start()
    wait_until(lambda: shadow.figures(elapsed_s=0).compared == QUEUE_BOUND, 10, "queue drained")
    shadow.stop()
    assert shadow.figures(elapsed_s=0).agreement_pct == 100.0
    candidate.runner.close()


def _assignment() -> ModelAssignment:
    return ModelAssignment.model_validate(
        {
            "deployment_id": 7,
            "name": "s",
            "version": "2",
            "bundle_digest": "b" * 64,
            "size": 1,
            "signature": {"path": "sig", "sha256": "c" * 64, "size": 1},
            "files": [],
            "shadow": {"duration_s": 60, "sample": 0.5},
        }
    )


class _Reports:
    def __init__(self) -> None:
        self.count = 0

    def state_changed(self) -> None:
        self.count += 1


def test_a_newer_command_ends_the_period_unjudged_and_nothing_switches(tmp_path: Path) -> None:
    models = ServedModels()
    models.activate(loaded_model(tmp_path, two_input_model, "s"))
    candidate = loaded_model(tmp_path, two_input_model, "c")
    waiting = iter([False, False, True])
    period = ShadowPeriod(
        models=models,
        reporter=_Reports(),
        stopping=lambda: False,
        superseded=lambda: next(waiting),
    )
    a = _assignment()
    served = models.get("s")
    with pytest.raises(AgentError, match="newer deployment command arrived"):
        period.run(a, candidate.runner, served, label="test")
    (figures,) = models.shadows.report()
    assert figures.verdict == ShadowVerdict.FAILED
    assert figures.reason is not None and figures.reason.startswith("not judged: a newer")
    assert models.get("s") is served and served.shadow is None
    models.clear()
    candidate.runner.close()


def test_a_period_whose_model_went_away_stops_its_worker_and_says_so(tmp_path: Path) -> None:
    models = ServedModels()
    served = loaded_model(tmp_path, two_input_model, "s")  # not (or no longer) active
    candidate = loaded_model(tmp_path, two_input_model, "c")
    period = ShadowPeriod(
        models=models, reporter=_Reports(), stopping=lambda: False, superseded=lambda: False
    )
    with pytest.raises(AgentError, match="not active"):
        period.run(_assignment(), candidate.runner, served, label="test")
    assert not [t for t in threading.enumerate() if t.name == "shadow-s" and t.is_alive()]
    (figures,) = models.shadows.report()
    assert figures.verdict == ShadowVerdict.FAILED
    assert figures.reason is not None and figures.reason.startswith("not judged:")
    candidate.runner.close()
    served.runner.close()


def _started(runner: object, name: str = "timed") -> Shadow:
    """A shadow of every request (nothing served: the test offers them) on ``runner``."""
    shadow = Shadow(
        name=name,
        version="2",
        serving_version="1",
        runner=runner,  # type: ignore[arg-type]
        spec=ShadowSpec(duration_s=60, sample=1.0),
        started_at=datetime.now(UTC),
    )
    shadow.start()
    return shadow


class _Stuck:
    """A shadow runner whose inference waits until released."""

    def __init__(self) -> None:
        self.release, self.started = threading.Event(), threading.Event()

    def infer(self, inputs: object) -> dict[str, np.ndarray]:
        self.started.set()
        self.release.wait(10)
        return {"y": np.zeros(1, np.float32)}


def test_a_shadow_too_slow_to_drain_its_queue_still_ends_its_worker() -> None:
    runner = _Stuck()
    shadow = _started(runner, "slow")
    one = {"y": np.zeros(1, np.float32)}
    shadow.offer(one, one, 0.001)
    assert runner.started.wait(5)  # the worker is inside the slow inference
    for _ in range(QUEUE_BOUND):
        shadow.offer(one, one, 0.001)  # the queue is full
    shadow.stop(timeout=0.05)  # its drain takes one more into the slow inference
    runner.release.set()
    threads = [t for t in threading.enumerate() if t.name.startswith("shadow-slow")]
    assert {t.name for t in threads} == {"shadow-slow", "shadow-slow-drain"}
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
    figures = shadow.figures(elapsed_s=0)
    assert figures.dropped == QUEUE_BOUND - 1 and figures.compared == 2


class _Timed:
    """A shadow runner that takes ``seconds`` per inference and records the CPU policy
    of the thread that called it."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.policies = seconds, list[int]()

    def infer(self, inputs: object) -> dict[str, np.ndarray]:
        self.policies.append(os.sched_getscheduler(0))
        time.sleep(self.seconds)
        return {"y": np.zeros(1, np.float32)}


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_worker_runs_only_on_cycles_nobody_else_wants() -> None:
    runner = _Timed(0.0)
    shadow = _started(runner)
    one = {"y": np.zeros(1, np.float32)}
    shadow.offer(one, one, 0.001)
    wait_until(lambda: shadow.figures(elapsed_s=0).compared == 1, 10, "compared")
    shadow.stop()
    assert runner.policies == [os.SCHED_IDLE]


def test_the_worker_pauses_past_its_duty_and_the_requests_meanwhile_are_dropped() -> None:
    runner = _Timed(0.05)  # 50 ms a comparison: at a 25% duty, about one per 200 ms
    shadow = _started(runner)
    one = {"y": np.zeros(1, np.float32)}
    until = time.monotonic() + 1.0
    while time.monotonic() < until:
        shadow.offer(one, one, 0.001)
        time.sleep(0.002)
    shadow.stop(timeout=0.0)
    figures = shadow.figures(elapsed_s=1.0)
    # at most 1 s / (0.05 s / DUTY) + the first one: a slower box only compares fewer
    assert 1 <= figures.compared <= 1 + int(1.0 / (0.05 / DUTY)) + 1, figures
    # every sampled request is compared, dropped, or in progress at the stop (the
    # worker's, and one its drain took)
    assert figures.sampled - figures.compared - figures.dropped in (0, 1, 2), figures
    assert figures.sampled > 100
