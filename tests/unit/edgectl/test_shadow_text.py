"""What ``edgectl`` prints about shadow periods (from the API's JSON)."""

from __future__ import annotations

from edgectl.live import deadline
from edgectl.shadow_text import batch_shadows, device_shadow, shadows_table

FIGURES = {
    "name": "det",
    "version": "2.0.0",
    "serving_version": "1.0.0",
    "verdict": "failed",
    "reason": "shadow gate: agreement 40% < 99% over 200 requests",
    "sampled": 250,
    "compared": 200,
    "dropped": 50,
    "agreement_pct": 40.0,
    "top1_agreement_pct": None,
    "max_deviation": 0.5,
    "mean_deviation": 0.01,
    "shadow_p50_ms": 1.5,
    "shadow_p99_ms": 3.0,
    "serving_p50_ms": 1.0,
    "serving_p99_ms": 2.0,
}


def test_a_devices_shadow_periods_as_a_table() -> None:
    header, row = shadows_table([FIGURES])
    assert header.split()[:3] == ["SHADOW", "OF", "VERSION"]
    assert "2.0.0 beside 1.0.0" in row and "200/250 (50 dropped)" in row
    assert "40.0%" in row and "1.50/3.00" in row and "1.00/2.00" in row
    assert row.rstrip().endswith("shadow gate: agreement 40% < 99% over 200 requests")


def test_a_rollout_devices_and_batches_shadow_periods_in_one_line() -> None:
    assert device_shadow(FIGURES) == (
        "failed: 40.0% agree over 200 req, p50 1.50 vs 1.00 ms (p99 3.00 vs 2.00)"
    )
    assert device_shadow(None) == "-"
    summary = {
        "passed": 1,
        "failed": 1,
        "running": 0,
        "min_agreement_pct": 40.0,
        "worst_shadow_p99_ms": 9.0,
        "serving_p99_ms": 2.0,
    }
    assert batch_shadows([{"index": 0, "shadow": summary}, {"index": 1, "shadow": None}]) == [
        "",
        "shadow periods:",
        "  batch 1: 1 passed, 1 failed, 0 running; lowest agreement 40.0%; "
        "slowest p99 9.00 ms vs 2.00 ms serving",
    ]
    assert batch_shadows([{"index": 0}]) == []


def test_the_device_deadline_includes_the_shadow_period() -> None:
    strategy = {"install_timeout_s": 600.0, "shadow": {"duration_s": 60.0}}
    assert deadline({"strategy": strategy}) == (
        "each device: 11m to activate after its batch starts, its 1m shadow period included"
    )
    assert deadline({"strategy": {"install_timeout_s": 600.0}}) == (
        "each device: 10m to activate after its batch starts"
    )
