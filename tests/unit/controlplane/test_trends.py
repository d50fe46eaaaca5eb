"""Figures over time (``controlplane.trends``) and the SVG charts drawn from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controlplane.dashboard.charts import Line, bar_chart, line_chart, number
from controlplane.trends import batch_figures, rates, thin

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@dataclass
class S:
    at: datetime
    requests: int
    errors: int
    p50_ms: float | None = 1.0
    p95_ms: float | None = 2.0


def test_rates_are_the_traffic_between_samples_per_minute() -> None:
    samples = [
        S(T0, 100, 0),
        S(T0 + timedelta(seconds=30), 160, 3),
        S(T0 + timedelta(seconds=30), 170, 3),  # the same instant: skipped
        S(T0 + timedelta(seconds=90), 50, 1),  # the count went down: activated again
    ]
    points = rates(samples)
    assert [(p.requests_per_min, p.errors_per_min) for p in points] == [(120.0, 6.0), (50.0, 1.0)]
    assert points[0].error_percent == 100 * 6 / 120
    assert rates(samples[:1]) == []
    naive = [S(T0.replace(tzinfo=None), 0, 0), S(T0 + timedelta(minutes=1), 0, 0)]
    assert rates(naive)[0].error_percent is None  # no traffic, no rate


def test_thin_keeps_at_most_n_evenly_and_the_last() -> None:
    assert thin(list(range(5)), 10) == [0, 1, 2, 3, 4]
    picked = thin(list(range(1000)), 10)
    assert len(picked) == 10 and picked[0] == 0 and picked[-1] == 999
    assert picked == sorted(picked)
    assert thin([1, 2], 0) == []


def test_batch_figures_sum_before_and_after_per_batch() -> None:
    figures = batch_figures(
        2,
        [
            (0, {"requests": 100, "errors": 1, "p95_ms": 5.0}, {"requests": 50, "errors": 5}),
            (1, {"requests": 10, "errors": 0, "p95_ms": 4.0}, None),
            (1, {"requests": 30, "errors": 0, "p95_ms": 6.0}, None),
            (7, {"requests": 1, "errors": 1}, None),  # no such batch: ignored
        ],
    )
    assert figures[0].before.error_percent == 1.0 and figures[0].after.error_percent == 10.0
    assert figures[0].after.p95_ms is None
    assert (figures[1].before.devices, figures[1].before.requests) == (2, 40)
    assert figures[1].before.p95_ms == 6.0 and figures[1].after.devices == 0


def _values(svg: str, series: str) -> list[str]:
    return re.findall(rf'data-series="{series}"[^>]*data-value="([^"]+)"', svg)


def test_a_line_chart_has_a_point_per_value_and_breaks_at_gaps() -> None:
    at = [T0 + timedelta(minutes=i) for i in range(4)]
    svg = line_chart(
        "det <1.0> latency",
        [Line("p95", [(at[0], 1.0), (at[1], None), (at[2], 3.0), (at[3], 4.5)])],
        unit="ms",
    )
    assert _values(svg, "p95") == ["1", "3", "4.5"]
    assert svg.count("<polyline") == 1  # 1.0 stands alone; 3.0 - 4.5 is one line
    assert "det &lt;1.0&gt; latency" in svg and "<1.0>" not in svg
    assert 'data-at="2026-12-06T10:03:00Z"' in svg
    assert "10:00:00" in svg and "10:03:00 UTC" in svg
    empty = line_chart("nothing", [Line("p95", [(at[0], None)])], unit="ms")
    assert "no samples in this window" in empty and "<svg" not in empty


def test_a_bar_chart_has_a_bar_per_value_scaled_to_the_highest() -> None:
    svg = bar_chart(
        "p95", [("canary", [2.0, 4.0]), ("batch 2", [None, 1.0])], ["before", "after"], unit="ms"
    )
    assert _values(svg, "before") == ["2"] and _values(svg, "after") == ["4", "1"]
    heights = [float(h) for h in re.findall(r'height="([0-9.]+)" data-series', svg)]
    assert heights[1] == max(heights) and abs(heights[0] * 2 - heights[1]) < 0.2
    assert 'data-group="canary"' in svg
    assert "no figures yet" in bar_chart("p95", [("a", [None])], ["x"], unit="ms")


def test_numbers_read_well() -> None:
    assert [number(v) for v in (0, 0.1234, 12.5, 1234.5)] == ["0", "0.123", "12.5", "1,234"]
