"""The pure rollout policy: planning, judging, deciding and the strategy's JSON form."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.rollouts.policy import (
    ActionKind,
    Decision,
    DeviceChange,
    DeviceView,
    Figures,
    Gate,
    GateAction,
    RolloutDeviceStatus,
    RolloutView,
    Strategy,
    decide,
    judge,
    plan_batches,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
GOOD = Figures(requests=100, errors=0, p95_ms=10.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def dev(
    device_id: str,
    status: RolloutDeviceStatus = RolloutDeviceStatus.UPDATING,
    *,
    batch: int = 0,
    target: str | None = "received",
    target_reason: str | None = None,
    baseline: Figures | None = GOOD,
    observed: Figures | None = None,
    activated_at: datetime | None = None,
    judged: bool = False,
) -> DeviceView:
    return DeviceView(
        device_id=device_id,
        batch=batch,
        status=status,
        target_status=target,
        target_reason=target_reason,
        baseline=baseline,
        observed=observed,
        activated_at=activated_at,
        judged=judged,
    )


def active(device_id: str, observed: Figures = GOOD, **kwargs: Any) -> DeviceView:
    """An activated device that already passed the gate once (unless ``judged=False``)."""
    kwargs.setdefault("activated_at", T0)
    kwargs.setdefault("judged", True)
    kwargs.setdefault("target", "activated")
    return dev(device_id, RolloutDeviceStatus.ACTIVATED, observed=observed, **kwargs)


def rollout(
    strategy: Strategy | None = None,
    *,
    state: str = "running",
    batch_count: int = 1,
    current: int = 0,
    started: datetime | None = T0,
    done: datetime | None = None,
) -> RolloutView:
    return RolloutView(
        state=state,
        strategy=strategy or Strategy(),
        batch_count=batch_count,
        current_batch=current,
        batch_started_at=started,
        batch_done_at=done,
    )


# --- planning ----------------------------------------------------------------------------


def ids(n: int) -> list[str]:
    return [f"dev-{i:02d}" for i in range(n)]


@pytest.mark.parametrize(
    ("n", "strategy", "sizes"),
    [
        (0, Strategy(canary=2, batches=3), []),
        (5, Strategy(), [5]),  # all at once
        (10, Strategy(batches=3), [4, 3, 3]),  # earlier batches larger
        (10, Strategy(canary=2, batches=3), [2, 3, 3, 2]),
        (20, Strategy(canary=1, batches=3), [1, 7, 6, 6]),
        (20, Strategy(canary_pct=10, batches=2), [2, 9, 9]),
        (20, Strategy(canary_pct=15), [3, 17]),  # 15% of 20 is exactly 3
        (10, Strategy(canary_pct=12.5), [2, 8]),  # ceil(1.25)
        (20, Strategy(canary_pct=1), [1, 19]),  # at least 1
        (3, Strategy(canary=5, batches=2), [3]),  # canary capped at the fleet
        (3, Strategy(batches=5), [1, 1, 1]),  # never an empty batch
        (4, Strategy(canary=1, batches=5), [1, 1, 1, 1]),
        (1, Strategy(canary_pct=50, batches=4), [1]),
    ],
)
def test_plan_batches_sizes(n: int, strategy: Strategy, sizes: list[int]) -> None:
    plan = plan_batches(ids(n), strategy)
    assert [len(b) for b in plan] == sizes
    assert [d for b in plan for d in b] == ids(n)


def test_plan_batches_is_sorted_and_deduplicated() -> None:
    plan = plan_batches(["c", "a", "b", "a"], Strategy(canary=1, batches=2))
    assert plan == [["a"], ["b"], ["c"]]


# --- judging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "observed", "activated_at", "now", "expected"),
    [
        pytest.param(GOOD, None, T0, at(10), ("waiting", None), id="no-figures-yet"),
        pytest.param(
            GOOD, Figures(19, 0, 50.0), T0, at(299), ("waiting", None), id="below-min-requests"
        ),
        pytest.param(None, None, None, at(9999), ("waiting", None), id="never-activated"),
        pytest.param(
            GOOD, None, T0, at(300), ("pass", "not judged: no traffic"), id="no-traffic-timeout"
        ),
        pytest.param(
            GOOD,
            Figures(5, 5, 99.0),
            T0,
            at(301),
            ("pass", "not judged: no traffic (only 5 of 20 requests)"),
            id="too-little-traffic",
        ),
        pytest.param(None, Figures(50, 0, 99.0), T0, at(1), ("pass", "no baseline"), id="no-base"),
        pytest.param(
            Figures(50, 0, None),
            Figures(50, 0, 99.0),
            T0,
            at(1),
            ("pass", "no baseline"),
            id="baseline-without-p95",
        ),
        pytest.param(
            GOOD, Figures(50, 0, None), T0, at(1), ("pass", "no p95 reported"), id="no-new-p95"
        ),
        pytest.param(GOOD, Figures(50, 0, 12.5), T0, at(1), ("pass", None), id="at-the-limit"),
        pytest.param(
            Figures(100, 0, 0.5),
            Figures(50, 0, 1.4),
            T0,
            at(1),
            ("pass", None),
            id="under-the-floor",
        ),
        pytest.param(
            Figures(100, 0, 10.1),
            Figures(50, 0, 31.2),
            T0,
            at(1),
            ("regressed", "p95 31.2 ms vs 10.1 ms before (+209%, limit +25%)"),
            id="latency",
        ),
        pytest.param(
            GOOD,
            Figures(100, 12, 10.0),
            T0,
            at(1),
            ("regressed", "error rate 12.0% vs 0.0% before (limit +1.0 points)"),
            id="error-rate",
        ),
        pytest.param(
            Figures(100, 2, 10.0), Figures(200, 5, 10.0), T0, at(1), ("pass", None), id="err-ok"
        ),
        pytest.param(
            None,
            Figures(100, 12, 10.0),
            T0,
            at(1),
            ("regressed", "error rate 12.0% vs 0.0% (no baseline) (limit +1.0 points)"),
            id="error-rate-no-baseline",
        ),
        pytest.param(
            Figures(100, 0, 10.0),
            Figures(100, 50, 40.0),
            T0,
            at(1),
            (
                "regressed",
                "p95 40.0 ms vs 10.0 ms before (+300%, limit +25%); "
                "error rate 50.0% vs 0.0% before (limit +1.0 points)",
            ),
            id="both",
        ),
    ],
)
def test_judge(
    baseline: Figures | None,
    observed: Figures | None,
    activated_at: datetime | None,
    now: datetime,
    expected: tuple[str, str | None],
) -> None:
    assert judge(TABLE_GATE, baseline, observed, activated_at, now) == expected


#: the gate the judge table is written for (the defaults, but a 1 ms floor, 20 requests)
TABLE_GATE = Gate(latency_floor_ms=1.0, min_requests=20)


def test_gate_defaults_ignore_small_samples_and_sub_5ms_jitter() -> None:
    gate = Gate()
    assert (gate.latency_pct, gate.latency_floor_ms, gate.min_requests) == (25.0, 5.0, 100)
    jitter = Figures(100, 0, 1.6)  # +300% but 1.2 ms: noise on a busy box, not a regression
    assert judge(gate, Figures(500, 0, 0.4), jitter, T0, at(1)) == ("pass", None)
    assert judge(gate, GOOD, Figures(50, 0, 31.0), T0, at(1))[0] == "waiting"


def test_judge_thresholds_are_configurable() -> None:
    strict = Gate(latency_pct=10, latency_floor_ms=0, error_rate_pct=0.5, min_requests=5)
    verdict, reason = judge(strict, GOOD, Figures(5, 0, 11.5), T0, at(1))
    assert (verdict, reason) == ("regressed", "p95 11.5 ms vs 10.0 ms before (+15%, limit +10%)")
    lenient = Gate(latency_pct=50, min_requests=20)
    assert judge(lenient, GOOD, Figures(50, 0, 14.0), T0, at(1)) == ("pass", None)


def test_figures_error_rate_and_json() -> None:
    assert Figures(0, 0, None).error_rate_pct == 0.0
    assert Figures(200, 3, 1.0).error_rate_pct == 1.5
    assert Figures.from_json({"requests": 7, "errors": 1, "p95_ms": 3}) == Figures(7, 1, 3.0)
    assert Figures.from_json(None) is None
    assert Figures.from_json(GOOD.to_json()) == GOOD


# --- deciding: start, install, non-running -----------------------------------------------


@pytest.mark.parametrize("state", ["paused", "completed", "aborted"])
def test_nothing_happens_unless_running(state: str) -> None:
    devices = [dev("a", target="failed", target_reason="bad bundle"), dev("b", target="activated")]
    assert decide(rollout(state=state), devices, at(9999)) == Decision()
    assert decide(rollout(state=state, current=-1), devices, at(1)) == Decision()


def test_the_first_batch_starts() -> None:
    devices = [dev("a", RolloutDeviceStatus.PENDING, target=None)]
    decision = decide(rollout(current=-1, started=None), devices, T0)
    assert decision == Decision(action=ActionKind.START_BATCH, batch=0)


def test_no_devices_completes() -> None:
    decision = decide(rollout(batch_count=0, current=-1, started=None), [], T0)
    assert decision == Decision(action=ActionKind.COMPLETE, reason="no devices match")


@pytest.mark.parametrize(
    ("device", "now", "change"),
    [
        (dev("a", target="activated"), at(5), (RolloutDeviceStatus.ACTIVATED, None)),
        (
            dev("a", RolloutDeviceStatus.PENDING, target="activated"),
            at(5),
            (RolloutDeviceStatus.ACTIVATED, None),
        ),
        (
            dev("a", target="failed", target_reason="signature invalid"),
            at(5),
            (RolloutDeviceStatus.FAILED, "signature invalid"),
        ),
        (dev("a", target="failed"), at(5), (RolloutDeviceStatus.FAILED, "install failed")),
        (
            active("a", target="failed", target_reason="health check failed"),
            at(5),
            (RolloutDeviceStatus.FAILED, "health check failed"),
        ),
        (
            dev("a", RolloutDeviceStatus.PENDING, target="pending"),
            at(5),
            (RolloutDeviceStatus.UPDATING, None),
        ),
        (dev("a", target="downloaded"), at(599), None),
        (
            dev("a", target="downloaded"),
            at(600),
            (RolloutDeviceStatus.FAILED, "timed out after 600 s (last status: downloaded)"),
        ),
        (
            dev("a", RolloutDeviceStatus.PENDING, target=None),
            at(601),
            (RolloutDeviceStatus.FAILED, "timed out after 600 s"),
        ),
        # it failed, then its agent got there after all: active, and judged
        (
            dev("a", RolloutDeviceStatus.FAILED, target="activated"),
            at(5),
            (RolloutDeviceStatus.ACTIVATED, None),
        ),
        # a failure the agent retries by itself is no outcome ...
        (
            dev("a", target="retrying", target_reason="refused"),
            at(5),
            (RolloutDeviceStatus.RETRYING, "refused"),
        ),
        (dev("a", RolloutDeviceStatus.RETRYING, target="retrying"), at(5), None),
        # ... until the device's deadline passes
        (
            dev("a", RolloutDeviceStatus.RETRYING, target="retrying", target_reason="refused"),
            at(601),
            (RolloutDeviceStatus.FAILED, "timed out after 600 s (last status: retrying: refused)"),
        ),
        (
            dev("a", RolloutDeviceStatus.RETRYING, target="downloaded"),
            at(5),
            (RolloutDeviceStatus.UPDATING, None),
        ),
        (dev("a", RolloutDeviceStatus.SKIPPED, target="activated"), at(5), None),  # final
        (dev("a", RolloutDeviceStatus.REGRESSED, target="failed"), at(5), None),  # final
    ],
)
def test_install_progress(
    device: DeviceView, now: datetime, change: tuple[RolloutDeviceStatus, str | None] | None
) -> None:
    # A second, still-installing device keeps the batch from being done.
    decision = decide(rollout(batch_count=2), [device, dev("z", target="verified")], now)
    expected = () if change is None else (DeviceChange("a", *change),)
    assert tuple(c for c in decision.devices if c.device_id == "a") == expected


def test_install_timeout_is_configurable() -> None:
    devices = [dev("a", target="received")]
    decision = decide(rollout(Strategy(install_timeout_s=30.5)), devices, at(31))
    assert decision.devices == (
        DeviceChange(
            "a", RolloutDeviceStatus.FAILED, "timed out after 30.5 s (last status: received)"
        ),
    )


def test_only_the_current_batch_moves() -> None:
    devices = [dev("a", batch=0, target="verified"), dev("b", RolloutDeviceStatus.PENDING, batch=1)]
    decision = decide(rollout(batch_count=2), devices, at(700))
    assert [c.device_id for c in decision.devices] == ["a"]


# --- deciding: failure threshold ---------------------------------------------------------


def threshold_fleet() -> list[DeviceView]:
    return [
        dev("a", RolloutDeviceStatus.FAILED),
        dev("b", RolloutDeviceStatus.FAILED),
        dev("c", target="failed", target_reason="out of disk"),  # fails in this call
        active("d"),
        active("e"),
        dev("f"),  # still installing
    ]


def test_failure_threshold_aborts_with_the_failing_change() -> None:
    strategy = Strategy(max_failures_pct=20, min_finished=5)
    decision = decide(rollout(strategy), threshold_fleet(), at(10))
    assert decision.action is ActionKind.ABORT
    assert decision.reason == "failure threshold: 3 of 5 finished devices failed (60% > 20%)"
    assert DeviceChange("c", RolloutDeviceStatus.FAILED, "out of disk") in decision.devices


@pytest.mark.parametrize(
    "strategy",
    [
        Strategy(max_failures_pct=20, min_finished=6),  # not enough finished devices yet
        Strategy(max_failures_pct=60, min_finished=1),  # 60% is not more than 60%
        Strategy(max_failures_pct=None),  # no threshold
    ],
)
def test_failure_threshold_holds(strategy: Strategy) -> None:
    decision = decide(rollout(strategy), threshold_fleet(), at(10))
    assert decision.action is None
    assert DeviceChange("c", RolloutDeviceStatus.FAILED, "out of disk") in decision.devices


def test_failure_threshold_counts_earlier_batches_not_later_ones() -> None:
    devices = [
        dev("a", RolloutDeviceStatus.FAILED, batch=0),
        active("b", batch=1),
        dev("c", batch=1, target="failed"),
        dev("d", RolloutDeviceStatus.PENDING, batch=2, target=None),
        dev("e", RolloutDeviceStatus.PENDING, batch=2, target=None),
    ]
    strategy = Strategy(canary=1, batches=2, max_failures_pct=50, min_finished=3)
    decision = decide(rollout(strategy, batch_count=3, current=1), devices, at(10))
    assert decision.reason == "failure threshold: 2 of 3 finished devices failed (66.7% > 50%)"


def test_zero_percent_threshold_aborts_on_the_first_failure() -> None:
    strategy = Strategy(max_failures_pct=0)
    decision = decide(rollout(strategy), [dev("a", target="failed"), dev("b")], at(10))
    assert decision.action is ActionKind.ABORT
    assert decision.reason == "failure threshold: 1 of 1 finished devices failed (100% > 0%)"


# --- deciding: the health gate -----------------------------------------------------------

SLOW = Figures(requests=100, errors=0, p95_ms=31.0)


@pytest.mark.parametrize(
    ("action", "kind"), [(GateAction.PAUSE, ActionKind.PAUSE), (GateAction.ABORT, ActionKind.ABORT)]
)
def test_latency_gate_pauses_or_aborts(action: GateAction, kind: ActionKind) -> None:
    strategy = Strategy(gate=Gate(action=action))
    devices = [active("a"), active("b", SLOW)]
    decision = decide(rollout(strategy, batch_count=2), devices, at(60))
    reason = "p95 31.0 ms vs 10.0 ms before (+210%, limit +25%)"
    assert decision.devices == (DeviceChange("b", RolloutDeviceStatus.REGRESSED, reason),)
    assert decision.action is kind
    assert decision.reason == f"latency gate: b: {reason}"
    assert not decision.batch_done


def test_error_rate_gate_names_every_regressed_device() -> None:
    failing = Figures(requests=100, errors=30, p95_ms=10.0)
    devices = [active("a", failing), active("b", failing), active("c", failing)]
    decision = decide(rollout(), devices, at(60))
    assert [c.status for c in decision.devices] == [RolloutDeviceStatus.REGRESSED] * 3
    assert decision.reason == (
        "error-rate gate: a: error rate 30.0% vs 0.0% before (limit +1.0 points)"
        " (and 2 more devices)"
    )


def test_regressed_device_is_not_judged_again_after_resume() -> None:
    devices = [
        active("a"),
        dev("b", RolloutDeviceStatus.REGRESSED, target="activated", observed=SLOW),
    ]
    decision = decide(rollout(batch_count=2), devices, at(60))
    assert decision == Decision(batch_done=True)


def test_gate_disabled_lets_regressions_through() -> None:
    strategy = Strategy(gate=Gate(enabled=False))
    decision = decide(rollout(strategy), [active("a", SLOW)], at(60))
    assert decision == Decision(
        action=ActionKind.COMPLETE, reason="1 device updated", batch_done=True
    )


def test_an_abort_wins_over_a_gate_pause() -> None:
    strategy = Strategy(max_failures_pct=10)
    devices = [active("a", SLOW), dev("b", target="failed")]
    decision = decide(rollout(strategy), devices, at(60))
    assert decision.action is ActionKind.ABORT
    assert decision.reason == "failure threshold: 1 of 2 finished devices failed (50% > 10%)"
    assert {c.status for c in decision.devices} == {
        RolloutDeviceStatus.REGRESSED,
        RolloutDeviceStatus.FAILED,
    }


def test_a_device_that_just_activated_is_judged_on_the_next_call() -> None:
    decision = decide(rollout(), [dev("a", target="activated", observed=SLOW)], at(60))
    assert decision == Decision(devices=(DeviceChange("a", RolloutDeviceStatus.ACTIVATED, None),))


def test_waiting_for_traffic_keeps_the_batch_open() -> None:
    devices = [active("a"), active("b", Figures(3, 0, 10.0))]
    assert decide(rollout(batch_count=2), devices, at(60)) == Decision()


def test_the_gate_still_watches_during_the_wait() -> None:
    strategy = Strategy(canary=1, wait_s=600)
    decision = decide(rollout(strategy, batch_count=2, done=at(60)), [active("a", SLOW)], at(120))
    assert decision.action is ActionKind.PAUSE
    assert decision.devices[0].status is RolloutDeviceStatus.REGRESSED


# --- deciding: batches, waits, completion ------------------------------------------------


def test_batch_done_is_reported_once_with_pass_notes() -> None:
    devices = [active("a"), active("b", baseline=None), active("c", Figures(0, 0, None))]
    now = at(400)  # "c" has had no traffic for 400 s
    first = decide(rollout(batch_count=2), devices, now)
    assert first == Decision(
        devices=(
            DeviceChange("b", RolloutDeviceStatus.ACTIVATED, "no baseline"),
            DeviceChange("c", RolloutDeviceStatus.ACTIVATED, "not judged: no traffic"),
        ),
        batch_done=True,
    )
    strategy = Strategy(wait_s=60)
    assert decide(rollout(strategy, batch_count=2, done=now), devices, now) == Decision()


def test_failed_devices_count_as_finished_for_the_batch() -> None:
    devices = [active("a"), dev("b", RolloutDeviceStatus.FAILED)]
    assert decide(rollout(batch_count=2), devices, at(60)) == Decision(batch_done=True)


@pytest.mark.parametrize(
    ("elapsed", "starts"), [(0, False), (119.9, False), (120, True), (500, True)]
)
def test_next_batch_waits(elapsed: float, starts: bool) -> None:
    strategy = Strategy(canary=1, batches=2, wait_s=120)
    done = at(60)
    devices = [active("a"), dev("b", RolloutDeviceStatus.PENDING, batch=1, target=None)]
    decision = decide(
        rollout(strategy, batch_count=3, done=done), devices, done + timedelta(seconds=elapsed)
    )
    expected = Decision(action=ActionKind.START_BATCH, batch=1) if starts else Decision()
    assert decision == expected


def test_last_batch_completes() -> None:
    devices = [
        active("a", batch=0),
        dev("b", RolloutDeviceStatus.FAILED, batch=1),
        active("c", batch=1),
        dev("d", batch=1, target="activated"),  # activates now; judged on the next call
    ]
    strategy = Strategy(canary=1)
    assert decide(rollout(strategy, batch_count=2, current=1), devices, at(60)).action is None
    devices[3] = active("d", batch=1)
    decision = decide(rollout(strategy, batch_count=2, current=1), devices, at(61))
    assert decision == Decision(
        action=ActionKind.COMPLETE, reason="3 of 4 devices updated (1 failed)", batch_done=True
    )


def test_naive_timestamps_are_utc() -> None:
    naive = T0.replace(tzinfo=None)
    devices = [dev("a", target="verified")]
    view = rollout(started=naive)
    assert decide(view, devices, at(600)).devices[0].status is RolloutDeviceStatus.FAILED


# --- a whole rollout through a tiny in-memory driver -------------------------------------


def apply(
    view: RolloutView, devices: list[DeviceView], decision: Decision, now: datetime
) -> tuple[RolloutView, list[DeviceView]]:
    """What the real driver does with a decision, minus the database and MQTT."""
    changes = {c.device_id: c for c in decision.devices}
    out = []
    for d in devices:
        c = changes.get(d.device_id)
        if c is not None and c.status is not d.status:
            activated = now if c.status is RolloutDeviceStatus.ACTIVATED else d.activated_at
            d = replace(d, status=c.status, activated_at=activated, judged=False)
        if c is not None and c.passed:
            d = replace(d, judged=True)
        out.append(d)
    if decision.batch_done:
        view = replace(view, batch_done_at=now)
    if decision.action is ActionKind.START_BATCH:
        assert decision.batch is not None
        view = replace(view, current_batch=decision.batch, batch_started_at=now, batch_done_at=None)
    elif decision.action is ActionKind.COMPLETE:
        view = replace(view, state="completed")
    elif decision.action is ActionKind.PAUSE:
        view = replace(view, state="paused")
    elif decision.action is ActionKind.ABORT:
        view = replace(view, state="aborted")
    return view, out


def run_rollout(
    strategy: Strategy, n: int, slow: frozenset[str] = frozenset(), seconds: int = 3000
) -> tuple[RolloutView, list[DeviceView], list[Decision]]:
    plan = plan_batches(ids(n), strategy)
    devices = [
        dev(i, RolloutDeviceStatus.PENDING, batch=b, target=None)
        for b, batch in enumerate(plan)
        for i in batch
    ]
    view = rollout(strategy, batch_count=len(plan), current=-1, started=None)
    log: list[Decision] = []
    for second in range(seconds):
        now = at(second)
        # Devices of a started batch install in 5 s and then serve traffic.
        devices = [
            replace(
                d,
                target_status="activated"
                if now >= view.batch_started_at + timedelta(seconds=5)
                else "received",
                observed=SLOW if d.device_id in slow else GOOD,
            )
            if d.batch == view.current_batch and view.batch_started_at is not None
            else d
            for d in devices
        ]
        decision = decide(view, devices, now)
        if decision != Decision():
            log.append(decision)
        view, devices = apply(view, devices, decision, now)
        # Deciding again on the state after the changes never repeats them.
        again = decide(view, devices, now)
        assert not set(again.devices) & set(decision.devices)
        assert not (again.batch_done and decision.batch_done)
        assert again.action is None or (again.action, again.batch) != (
            decision.action,
            decision.batch,
        )
        if view.state != "running":
            break
    return view, devices, log


def test_canary_and_three_batches_complete() -> None:
    strategy = Strategy(canary=2, batches=3, wait_s=30)
    view, devices, log = run_rollout(strategy, 20)
    assert view.state == "completed"
    assert {d.status for d in devices} == {RolloutDeviceStatus.ACTIVATED}
    starts = [(d.batch, d) for d in log if d.action is ActionKind.START_BATCH]
    assert [b for b, _ in starts] == [0, 1, 2, 3]
    assert sum(1 for d in log if d.batch_done) == 4
    assert log[-1].reason == "all 20 devices updated"


def test_slow_canary_pauses_before_the_first_batch() -> None:
    strategy = Strategy(canary=2, batches=3)
    view, devices, log = run_rollout(strategy, 20, slow=frozenset({"dev-01"}))
    assert view.state == "paused"
    assert view.current_batch == 0
    assert log[-1].reason is not None and log[-1].reason.startswith(
        "latency gate: dev-01: p95 31.0"
    )
    assert [d.status for d in devices if d.batch > 0] == [RolloutDeviceStatus.PENDING] * 18
    # An operator resume: the regressed device is not judged again and the rollout goes on.
    view = replace(view, state="running")
    decision = decide(view, devices, at(3000))
    assert decision == Decision(batch_done=True)


# --- the strategy's JSON form ------------------------------------------------------------


def test_strategy_json_round_trip() -> None:
    strategy = Strategy(
        canary_pct=10,
        batches=3,
        wait_s=120,
        max_failures_pct=20,
        min_finished=4,
        install_timeout_s=300,
        gate=Gate(latency_pct=10, min_requests=50, action=GateAction.ABORT, enabled=False),
    )
    data = strategy.to_json()
    assert data["gate"]["action"] == "abort"
    assert Strategy.from_json(data) == strategy
    assert Strategy.from_json({}) == Strategy()
    assert Strategy.from_json({"canary": 2, "gate": {"action": "abort"}}) == Strategy(
        canary=2, gate=Gate(action=GateAction.ABORT)
    )
    assert Strategy.from_json({"canary": None, "max_failures_pct": 5, "gate": None}) == Strategy(
        max_failures_pct=5.0
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"canary": 2, "canary_pct": 10}, "give canary or canary_pct, not both"),
        ({"canary": 0}, "canary must be >= 1, not 0"),
        ({"canary_pct": 0}, r"canary_pct must be > 0 and <= 100, not 0"),
        ({"canary_pct": 100.5}, r"canary_pct must be > 0 and <= 100, not 100.5"),
        ({"batches": 0}, "batches must be >= 1, not 0"),
        ({"batches": "3"}, "strategy.batches must be a number, not '3'"),
        ({"batches": 1.5}, "strategy.batches must be a whole number, not 1.5"),
        ({"batches": True}, "strategy.batches must be a number, not True"),
        ({"wait_s": -1}, "wait_s must be >= 0, not -1"),
        ({"wait_s": float("nan")}, "wait_s must be a finite number, not nan"),
        ({"max_failures_pct": 101}, "max_failures_pct must be between 0 and 100, not 101"),
        ({"max_failures_pct": -1}, "max_failures_pct must be between 0 and 100, not -1"),
        ({"min_finished": 0}, "min_finished must be >= 1, not 0"),
        ({"install_timeout_s": 0}, "install_timeout_s must be > 0, not 0"),
        ({"canaries": 1}, "unknown strategy key 'canaries'"),
        ({"gate": []}, "strategy.gate must be a JSON object"),
        ({"gate": {"latency_pct": -5}}, "gate.latency_pct must be >= 0, not -5"),
        ({"gate": {"latency_floor_ms": -0.5}}, r"gate.latency_floor_ms must be >= 0, not -0.5"),
        ({"gate": {"error_rate_pct": -1}}, "gate.error_rate_pct must be >= 0, not -1"),
        ({"gate": {"min_requests": -1}}, "gate.min_requests must be >= 0, not -1"),
        ({"gate": {"no_traffic_timeout_s": 0}}, "gate.no_traffic_timeout_s must be > 0, not 0"),
        ({"gate": {"action": "rollback"}}, "gate.action must be pause or abort, not 'rollback'"),
        ({"gate": {"enabled": "yes"}}, "gate.enabled must be true or false"),
        ({"gate": {"p99": 1}}, "unknown gate key 'p99'"),
    ],
)
def test_strategy_from_json_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Strategy.from_json(data)
    assert str(caught.value) == message


def test_strategy_from_json_needs_an_object() -> None:
    with pytest.raises(ValueError, match=r"^strategy must be a JSON object$"):
        Strategy.from_json([1, 2])  # type: ignore[arg-type]
