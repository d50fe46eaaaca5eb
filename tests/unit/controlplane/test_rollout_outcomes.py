"""Issue 13: a device is judged on its final outcome; summaries and plans say what
really happened (retrying is no outcome, a late activation is judged, a strategy that
cannot be followed as asked says so)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controlplane.models import TargetStatus
from controlplane.rollouts.policy import (
    ActionKind,
    Decision,
    DeviceChange,
    DeviceView,
    Figures,
    RolloutDeviceStatus,
    RolloutView,
    Strategy,
    decide,
    plan_batches,
    plan_notes,
    summary,
)
from controlplane.status import ReportView, TargetView, after_event, after_report

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
GOOD = Figures(requests=100, errors=0, p95_ms=10.0)
S = RolloutDeviceStatus


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def dev(
    device_id: str,
    status: RolloutDeviceStatus,
    *,
    batch: int = 0,
    target: str | None = "activated",
    observed: Figures | None = GOOD,
    activated_at: datetime | None = T0,
    judged: bool = True,
) -> DeviceView:
    return DeviceView(
        device_id=device_id,
        batch=batch,
        status=status,
        target_status=target,
        target_reason=None,
        baseline=GOOD,
        observed=observed,
        activated_at=activated_at,
        judged=judged,
    )


def view(current: int = 0, batches: int = 2, **strategy: object) -> RolloutView:
    return RolloutView(
        state="running",
        strategy=Strategy(**strategy),  # type: ignore[arg-type]
        batch_count=batches,
        current_batch=current,
        batch_started_at=T0,
        batch_done_at=None,
    )


def test_retrying_devices_are_not_finished_for_the_failure_threshold() -> None:
    devices = [
        dev("a", S.ACTIVATED),
        dev("b", S.RETRYING, target="retrying", activated_at=None),
        dev("c", S.RETRYING, target="retrying", activated_at=None),
    ]
    decision = decide(view(max_failures_pct=20.0), devices, at(30))
    assert decision == Decision()  # no abort, and the batch is not done either


def test_a_late_activation_in_an_earlier_batch_is_judged_before_the_next_batch() -> None:
    # batch 0 is done and waited for; its device b failed, then activated after all
    devices = [
        dev("a", S.ACTIVATED),
        dev("b", S.FAILED, target="activated", activated_at=None, judged=False),
        dev("c", S.PENDING, batch=1, target=None, activated_at=None),
    ]
    done = RolloutView(
        state="running",
        strategy=Strategy(canary=2),
        batch_count=2,
        current_batch=0,
        batch_started_at=T0,
        batch_done_at=at(10),
    )
    first = decide(done, devices, at(20))
    assert first == Decision(devices=(DeviceChange("b", S.ACTIVATED, None),))
    # activated now: the next batch waits until b has its verdict ...
    devices[1] = dev("b", S.ACTIVATED, observed=None, activated_at=at(20), judged=False)
    assert decide(done, devices, at(21)) == Decision()
    # ... its pass is recorded, and the next batch starts
    devices[1] = dev("b", S.ACTIVATED, activated_at=at(20), judged=False)
    assert decide(done, devices, at(22)) == Decision(
        devices=(DeviceChange("b", S.ACTIVATED, None, passed=True),),
        action=ActionKind.START_BATCH,
        batch=1,
    )


def test_a_late_activation_that_regresses_pauses_the_rollout() -> None:
    slow = Figures(requests=100, errors=0, p95_ms=40.0)
    devices = [
        dev("a", S.ACTIVATED),
        dev("b", S.ACTIVATED, observed=slow, judged=False),
        dev("c", S.UPDATING, batch=1, target="received", activated_at=None),
    ]
    decision = decide(view(current=1, canary=2), devices, at(30))
    assert decision.action is ActionKind.PAUSE
    assert [(c.device_id, c.status) for c in decision.devices] == [("b", S.REGRESSED)]


def test_summaries_never_say_all_updated_when_some_were_not() -> None:
    assert summary([S.ACTIVATED] * 3) == "all 3 devices updated"
    assert summary([S.ACTIVATED]) == "1 device updated"
    assert summary([S.FAILED] * 3) == "0 of 3 devices updated (3 failed)"
    mixed = [S.ACTIVATED, S.FAILED, S.REGRESSED, S.ACTIVATED]
    assert summary(mixed) == "2 of 4 devices updated (1 failed, 1 regressed)"


def test_plan_notes_say_where_the_strategy_could_not_be_followed() -> None:
    def notes(count: int, **kwargs: object) -> list[str]:
        strategy = Strategy(**kwargs)  # type: ignore[arg-type]
        ids = [f"d{i}" for i in range(count)]
        return plan_notes(count, strategy, plan_batches(ids, strategy))

    assert notes(1, canary=2, batches=3) == [
        "canary of 2 asked, 1 device match: the canary is that one",
        "3 batches asked, no device left after the canary: none run",
    ]
    assert notes(3, batches=5) == ["5 batches asked, 3 devices left: 3 batches of 1"]
    assert notes(20, canary=2, batches=3) == []
    assert notes(4, canary_pct=50, batches=2) == []


def test_retrying_is_no_outcome_for_a_target() -> None:
    def target(status: TargetStatus) -> TargetView:
        return TargetView(generation=5, bundle_digest="aa" * 32, status=status)

    retrying = TargetStatus.RETRYING
    for status in (TargetStatus.PENDING, TargetStatus.DOWNLOADED, TargetStatus.VERIFIED):
        change = after_event(target(status), retrying, "refused")
        assert change is not None and change.status is retrying
    for status in (TargetStatus.ACTIVATED, TargetStatus.FAILED):
        assert after_event(target(status), retrying, "refused") is None
    # the retry's next step and its outcome replace it
    for kind in (TargetStatus.RECEIVED, TargetStatus.ACTIVATED, TargetStatus.FAILED):
        change = after_event(target(retrying), kind)
        assert change is not None and change.status is kind
    # a state report fails a retrying target only once the device says it gave up
    still = ReportView(generation=5, active_digests=(), last_error="refused", gave_up=False)
    assert after_report(target(retrying), still, current=True) is None
    gave_up = ReportView(generation=5, active_digests=(), last_error="refused", gave_up=True)
    change = after_report(target(retrying), gave_up, current=True)
    assert change is not None and change.status is TargetStatus.FAILED


def test_a_report_the_agent_marks_retrying_never_fails_a_target() -> None:
    def target(status: TargetStatus) -> TargetView:
        return TargetView(generation=5, bundle_digest="aa" * 32, status=status)

    # the agent serves nothing yet (status failed) but says it tries again by itself
    report = ReportView(
        generation=5, active_digests=(), last_error="ConnectError", gave_up=False, retrying=True
    )
    for status in (TargetStatus.RECEIVED, TargetStatus.DOWNLOADED):
        change = after_report(target(status), report, current=True)
        assert change is not None and change.status is TargetStatus.RETRYING
    assert after_report(target(TargetStatus.RETRYING), report, current=True) is None
    assert after_report(target(TargetStatus.ACTIVATED), report, current=True) is None
