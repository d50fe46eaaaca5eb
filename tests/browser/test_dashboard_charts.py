"""The dashboard's charts in Chromium: a device's latency and traffic over time, a
rollout's batches before and after, and the fleet cohort view are drawn (not a blank
box) with their data points."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from controlplane.models import utcnow
from tests.support.browser import new_token, screenshot, sign_in
from tests.support.charts import assert_chart_renders
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.browser


def test_device_rollout_and_cohort_charts_render(page: Page, plane: Plane) -> None:
    ids = plane.fleet_on_v1(2, fleet="charted", prefix="cd")
    now = utcnow()
    for step, minutes_ago in enumerate((50, 40, 30, 20, 10)):  # five samples: four rates
        for device_id in ids:
            figures = ("1.0.0", 500 + 100 * step, step, 10.0 + step)
            plane.heartbeat(device_id, figures, at=now - timedelta(minutes=minutes_ago))
    rid = int(
        plane.start({"canary": 1, "batches": 1, "gate": {"enabled": False}}, fleet="charted")["id"]
    )
    plane.tick()
    for device_id in ids:
        if plane.has_news(device_id):
            plane.healthy_v2(device_id, p95=12.0)
    plane.tick(3)
    base = str(plane.http.base_url).rstrip("/")
    sign_in(page, base, new_token(plane.http, "viewer", "charts"))

    page.goto(f"{base}/dashboard/devices/{ids[1]}?window=1h")
    latency = 'svg.chart[aria-label="det 1.0.0 latency"]'
    assert_chart_renders(page, latency, min_points=8)  # p50 and p95, 4 intervals or more
    p95 = page.locator(f'{latency} [data-series="p95"]')
    values = p95.evaluate_all("points => points.map(p => Number(p.dataset.value))")
    assert values[:4] == [11.0, 12.0, 13.0, 14.0], values  # the dated heartbeats, in order
    assert_chart_renders(page, 'svg.chart[aria-label="det 1.0.0 traffic"]', min_points=8)
    screenshot(page, "device-charts")

    page.goto(f"{base}/dashboard/rollouts/{rid}")
    worst = 'svg.chart[aria-label="worst p95 per batch"]'
    assert_chart_renders(page, worst, min_points=2)
    expect(page.locator(f'{worst} [data-group="canary"]').first).to_be_attached()
    assert_chart_renders(page, 'svg.chart[aria-label="error rate per batch"]', min_points=1)
    screenshot(page, "rollout-charts")

    page.goto(f"{base}/dashboard/cohorts?window=1h")
    expect(page.get_by_role("heading", level=1)).to_contain_text("ohort")
    assert_chart_renders(page, 'svg.chart[aria-label="p95 per cohort"]', min_points=2)
    screenshot(page, "cohorts")
