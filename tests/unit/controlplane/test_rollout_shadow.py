"""A rollout's shadow period: the strategy's JSON form, the spec each device's assignment
carries, and a device that failed its shadow gate counted as a gate regression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.dashboard.pages import device_page
from controlplane.models import Device
from controlplane.rollouts.policy import (
    ActionKind,
    DeviceView,
    GateAction,
    RolloutDeviceStatus,
    RolloutView,
    Strategy,
    decide,
    record,
)
from controlplane.rollouts.shadow_view import batch_shadow
from controlplane.rollouts.strategy import Gate, Shadow
from controlplane.views import device_public
from protocol import SHADOW_GATE_PREFIX, ShadowFigures, ShadowSpec, ShadowVerdict

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REASON = f"{SHADOW_GATE_PREFIX} agreement 40% < 99% over 50 requests"


def _view(strategy: Strategy) -> RolloutView:
    return RolloutView("running", strategy, 2, 0, T0, None)


def _device(device_id: str, target: str, reason: str | None = None) -> DeviceView:
    return DeviceView(device_id, 0, RolloutDeviceStatus.UPDATING, target, reason, None, None, None)


def test_the_shadow_round_trips_and_is_checked() -> None:
    strategy = Strategy(shadow=Shadow(duration_s=600, sample_pct=20, min_agreement_pct=99))
    assert Strategy.from_json(strategy.to_json()) == strategy
    assert Strategy.from_json({"shadow": {"duration_s": 30}}).shadow == Shadow(30, 10.0, None)
    for bad, message in [
        ({"shadow": {}}, "shadow.duration_s is required"),
        ({"shadow": {"duration_s": 0}}, "shadow.duration_s must be > 0"),
        ({"shadow": {"duration_s": 5, "sample_pct": 0}}, "shadow.sample_pct must be > 0"),
        ({"shadow": {"duration_s": 5, "min_agreement_pct": 101}}, "between 0 and 100"),
        ({"shadow": {"duration_s": 5, "extra": 1}}, "unknown shadow key 'extra'"),
    ]:
        with pytest.raises(ValueError, match=message):
            Strategy.from_json(bad)


def test_the_spec_takes_the_latency_threshold_from_the_gate() -> None:
    shadow = Shadow(duration_s=600, sample_pct=20, min_agreement_pct=99)
    spec = ShadowSpec.model_validate(shadow.spec(Gate(latency_pct=50, latency_floor_ms=2)))
    assert (spec.duration_s, spec.sample, spec.min_agreement_pct) == (600, 0.2, 99)
    assert (spec.max_latency_ratio, spec.latency_floor_ms) == (1.5, 2)
    off = ShadowSpec.model_validate(shadow.spec(Gate(enabled=False)))
    assert off.max_latency_ratio is None


@pytest.mark.parametrize("action", [GateAction.PAUSE, GateAction.ABORT])
def test_a_failed_shadow_gate_is_a_regression_that_pauses_or_aborts(action: GateAction) -> None:
    strategy = Strategy(gate=Gate(action=action), shadow=Shadow(duration_s=60))
    devices = [_device("d1", "failed", REASON), _device("d2", "received")]
    decision = decide(_view(strategy), devices, T0 + timedelta(seconds=5))
    assert decision.action == (ActionKind.ABORT if action is GateAction.ABORT else ActionKind.PAUSE)
    assert decision.reason == "shadow gate: d1: agreement 40% < 99% over 50 requests"
    (change,) = decision.devices
    assert (change.device_id, change.status, change.reason) == (
        "d1",
        RolloutDeviceStatus.REGRESSED,
        REASON,
    )


def test_a_paused_rollout_records_what_its_devices_reported_and_decides_nothing() -> None:
    # the shadow gate paused the rollout on d1; d2 and d3 fail theirs too, d4 switched,
    # d5 still runs its shadow, d6's batch never started
    devices = [
        DeviceView("d1", 0, RolloutDeviceStatus.REGRESSED, "failed", REASON, None, None, None),
        _device("d2", "failed", REASON),
        _device("d3", "failed", "digest mismatch"),
        _device("d4", "activated"),
        _device("d5", "received"),
        DeviceView("d6", 1, RolloutDeviceStatus.PENDING, None, None, None, None, None),
    ]
    decision = record(devices)
    assert decision.action is None and not decision.batch_done
    assert [(c.device_id, c.status, c.reason) for c in decision.devices] == [
        ("d2", RolloutDeviceStatus.REGRESSED, REASON),
        ("d3", RolloutDeviceStatus.FAILED, "digest mismatch"),
        ("d4", RolloutDeviceStatus.ACTIVATED, None),
    ]


def test_other_install_failures_stay_failures() -> None:
    strategy = Strategy(shadow=Shadow(duration_s=60))
    decision = decide(_view(strategy), [_device("d1", "failed", "digest mismatch")], T0)
    assert decision.action is None
    assert decision.devices[0].status is RolloutDeviceStatus.FAILED


def test_the_install_deadline_leaves_room_for_the_shadow_period() -> None:
    strategy = Strategy(install_timeout_s=60, shadow=Shadow(duration_s=600))
    in_shadow = decide(_view(strategy), [_device("d1", "received")], T0 + timedelta(seconds=300))
    assert all(c.status is not RolloutDeviceStatus.FAILED for c in in_shadow.devices)
    late = decide(_view(strategy), [_device("d1", "received")], T0 + timedelta(seconds=661))
    assert late.devices[0].status is RolloutDeviceStatus.FAILED


# -- shown: the device page, a rollout's batches ------------------------------------------


def _figures(device: str, verdict: str, agreement: float, p99: float) -> ShadowFigures:
    return ShadowFigures(
        name="det",
        version="2.0.0",
        serving_version="1.0.0",
        started_at=T0,
        duration_s=600,
        sample=0.2,
        verdict=ShadowVerdict(verdict),
        reason=REASON if verdict == "failed" else None,
        sampled=250,
        compared=200,
        dropped=50,
        agreement_pct=agreement,
        max_deviation=0.5,
        mean_deviation=0.01,
        shadow_p50_ms=p99 / 2,
        shadow_p99_ms=p99,
        serving_p50_ms=1.0,
        serving_p99_ms=2.0,
    )


def test_the_device_page_shows_each_models_latest_shadow_period() -> None:
    device = Device(
        id="d1",
        fleet="f",
        generation=2,
        reported_generation=2,
        created_at=T0,
        shadows=[_figures("d1", "failed", 40.0, 3.0).model_dump(mode="json")],
    )
    public = device_public(device, None)
    assert public.shadows[0].verdict == ShadowVerdict.FAILED
    html = str(device_page(public, now=T0))
    assert "Shadow evaluation" in html and "2.0.0 beside 1.0.0" in html
    assert "200 of 250 sampled (20%), 50 dropped" in html and "40.0%" in html
    assert "1.50 ms / 3.00 ms" in html and "1.00 ms / 2.00 ms" in html
    assert REASON.replace("<", "&lt;") in html
    assert "Shadow evaluation" not in str(
        device_page(device_public(Device(id="d2", fleet="f", created_at=T0), None), now=T0)
    )


def test_a_batch_sums_up_its_devices_shadow_periods() -> None:
    found = batch_shadow(
        [
            _figures("d1", "passed", 100.0, 3.0),
            _figures("d2", "failed", 40.0, 9.0),
            _figures("d3", "running", 99.5, 4.0),
        ]
    )
    assert found is not None
    assert (found.devices, found.passed, found.failed, found.running) == (3, 1, 1, 1)
    assert found.min_agreement_pct == 40.0
    assert (found.worst_shadow_p99_ms, found.serving_p99_ms) == (9.0, 2.0)
    assert batch_shadow([]) is None


@pytest.mark.parametrize(
    ("gate", "field"),
    [(Gate(latency_pct=200_000), "latency_pct"), (Gate(latency_floor_ms=90_000), "floor")],
)
def test_a_gate_the_devices_shadow_spec_cannot_carry_is_refused_at_once(
    gate: Gate, field: str
) -> None:
    """Every device's assignment carries the gate in its ShadowSpec: a value beyond the
    spec's bounds must be refused with the strategy, not fail each command build later."""
    with pytest.raises(ValueError, match=f"with a shadow period, gate.*{field}") as info:
        Strategy(gate=gate, shadow=Shadow(duration_s=60))
    assert "\n" not in str(info.value)
    Strategy(gate=gate)  # no shadow period: the health gate alone takes any value
    ShadowSpec.model_validate(Strategy(shadow=Shadow(duration_s=60)).shadow.spec(Gate()))  # type: ignore[union-attr]
