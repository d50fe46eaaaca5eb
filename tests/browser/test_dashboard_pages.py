"""The dashboard in Chromium: sign in through the form, every page (overview, fleet view,
device, rollout, the action forms, cohorts, audit trail, alerts), what a viewer is not
offered, narrow screens. The charts: ``test_dashboard_charts.py``."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import new_token, screenshot, sign_in
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.browser


def _base(plane: Plane) -> str:
    return str(plane.http.base_url).rstrip("/")


def _running_rollout(plane: Plane, fleet: str, prefix: str) -> tuple[list[str], int]:
    """Three devices of ``fleet`` on det 1.0.0, a rollout of 2.0.0 past its canary."""
    ids = plane.fleet_on_v1(3, fleet=fleet, prefix=prefix)
    rollout = plane.start({"canary": 1, "batches": 1}, fleet=fleet)
    plane.healthy_v2(ids[0])
    plane.tick()
    return ids, int(rollout["id"])


def test_an_operator_signs_in_and_visits_every_page(page: Page, plane: Plane) -> None:
    ids, rid = _running_rollout(plane, "store-eu", "eu")
    base = _base(plane)
    page.goto(f"{base}/dashboard/devices/{ids[0]}")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))  # not signed in yet
    sign_in(page, base, new_token(plane.http, "operator", "ops"))

    expect(page.locator("nav .who")).to_have_text("signed in as ops (operator)")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="store-eu").first).to_be_visible()
    expect(page.get_by_role("link", name=ids[2], exact=True)).to_be_visible()
    screenshot(page, "overview")

    page.get_by_role("link", name="store-eu").first.click()  # the fleet view
    expect(page).to_have_url(re.compile(r"/dashboard\?fleet=store-eu$"))
    expect(page.get_by_role("heading", name="Fleet store-eu")).to_be_visible()
    for device_id in ids:
        expect(page.get_by_role("link", name=device_id, exact=True)).to_be_visible()

    page.get_by_role("link", name=ids[1], exact=True).click()  # a device page
    expect(page.get_by_role("heading", name=f"Device {ids[1]}")).to_be_visible()
    expect(page.locator("main")).to_contain_text("det 1.0.0")
    screenshot(page, "device")

    page.get_by_role("link", name="EdgeFleet").click()  # home, then the rollout page
    page.locator(f'a[href="/dashboard/rollouts/{rid}"]').first.click()
    expect(page.get_by_role("heading", name=f"Rollout {rid}: det 2.0.0")).to_be_visible()
    batches = page.locator("section", has=page.get_by_role("heading", name="Batches"))
    expect(batches.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name=ids[0], exact=True)).to_be_visible()
    for label in ("Pause…", "Abort…"):
        expect(page.get_by_role("link", name=label)).to_be_visible()
    expect(page.get_by_role("link", name="Resume…")).to_have_count(0)  # not paused
    screenshot(page, "rollout")

    page.get_by_role("link", name="Abort…").click()  # an action page, then cancelled
    expect(page.get_by_role("heading", name="Abort")).to_be_visible()
    expect(page.get_by_label("I mean it")).not_to_be_checked()
    expect(page.get_by_placeholder("reason (optional)")).to_be_visible()
    screenshot(page, "abort-form")
    page.get_by_role("link", name="cancel").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/rollouts/{rid}$"))
    assert plane.rollout(rid)["state"] == "running"

    missing = page.goto(f"{base}/dashboard/devices/no-such-device")
    assert missing is not None and missing.status == 404
    expect(page.locator("p.error")).to_have_text("unknown device 'no-such-device'")

    page.get_by_role("link", name="Cohorts", exact=True).click()  # the fleet cohort view
    expect(page).to_have_url(re.compile(r"/dashboard/cohorts$"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    page.get_by_role("link", name="Audit", exact=True).click()  # who did what
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page.locator("main tbody tr").first).to_be_visible()  # the rollout's creation
    expect(page.locator("main")).to_contain_text("rollout.create")
    screenshot(page, "audit")

    page.get_by_role("link", name="Alerts", exact=True).click()  # webhooks, deliveries
    expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    expect(page.locator("main")).to_contain_text("No webhook.")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    page.goto(f"{base}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))


def test_a_wrong_token_is_refused_in_one_line(page: Page, plane: Plane) -> None:
    page.goto(f"{_base(plane)}/dashboard/login")
    page.get_by_label("API token").fill("efk_not-a-token-at-all-000000000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("p.error")).to_have_text("invalid or revoked token")
    expect(page.get_by_label("API token")).to_be_visible()


def test_a_viewer_sees_no_action_buttons(page: Page, plane: Plane) -> None:
    _, rid = _running_rollout(plane, "viewing", "vw")
    base = _base(plane)
    sign_in(page, base, new_token(plane.http, "viewer", "watcher"))
    page.goto(f"{base}/dashboard/rollouts/{rid}")
    expect(page.get_by_role("heading", name=f"Rollout {rid}: det 2.0.0")).to_be_visible()
    expect(page.locator("a.button")).to_have_count(0)
    expect(page.locator("main form")).to_have_count(0)
    expect(page.locator("p.hint")).to_contain_text("Sign in with an operator token")
    refused = page.goto(f"{base}/dashboard/rollouts/{rid}/pause")  # typed in by hand
    assert refused is not None and refused.status == 403
    expect(page.locator("p.error")).to_have_text("role viewer may not pause a rollout")
    expect(page.locator("main form")).to_have_count(0)
    assert plane.rollout(rid)["state"] == "running"


def test_pages_fit_a_narrow_screen(chromium_narrow: Page, plane: Plane) -> None:
    """420 px wide (a phone): no page scrolls sideways."""
    ids, rid = _running_rollout(plane, "narrow", "nw")
    page, base = chromium_narrow, _base(plane)
    sign_in(page, base, new_token(plane.http, "operator", "phone"))
    widths = {}
    for name, path in (
        ("overview", "/dashboard"),
        ("device", f"/dashboard/devices/{ids[0]}"),
        ("rollout", f"/dashboard/rollouts/{rid}"),
        ("cohorts", "/dashboard/cohorts"),
        ("audit", "/dashboard/audit"),
        ("alerts", "/dashboard/alerts"),
    ):
        page.goto(f"{base}{path}")
        screenshot(page, f"narrow-{name}")
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
    assert all(width <= 420 for width in widths.values()), f"wider than 420 px: {widths}"
