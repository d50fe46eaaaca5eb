"""An operator pauses, resumes, aborts and rolls back rollouts through the dashboard's
forms in Chromium (the CSRF field, the same-origin check and the confirmation box as a
browser meets them); the API then shows what the forms did."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import new_token, screenshot, sign_in
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.browser


def _base(plane: Plane) -> str:
    return str(plane.http.base_url).rstrip("/")


def _expect_state(page: Page, rid: int, state: str) -> None:
    """The browser shows rollout ``rid``'s page, its state badge saying ``state``."""
    expect(page).to_have_url(re.compile(rf"/dashboard/rollouts/{rid}$"))
    facts = page.locator("dl.facts")
    expect(facts.locator("dt", has_text=re.compile("^state$")).locator("+ dd")).to_have_text(state)


def test_pause_resume_and_abort_through_the_forms(page: Page, plane: Plane) -> None:
    ids = plane.fleet_on_v1(3, fleet="acting", prefix="ac")
    rid = int(plane.start({"canary": 1, "batches": 1}, fleet="acting")["id"])
    plane.healthy_v2(ids[0])
    plane.tick()
    base = _base(plane)
    sign_in(page, base, new_token(plane.http, "operator", "ops"))
    page.goto(f"{base}/dashboard/rollouts/{rid}")

    page.get_by_role("link", name="Pause…").click()
    expect(page.locator("meta[http-equiv=refresh]")).to_have_count(0)  # what is typed stays
    page.get_by_placeholder("reason (optional)").fill("store <opening> hours")
    page.get_by_role("button", name="Pause", exact=True).click()
    _expect_state(page, rid, "paused")
    expect(page.locator("main")).to_contain_text("store <opening> hours")
    shown = plane.rollout(rid)
    assert (shown["state"], shown["reason"]) == ("paused", "store <opening> hours")

    page.get_by_role("link", name="Resume…").click()
    page.get_by_role("button", name="Resume", exact=True).click()
    _expect_state(page, rid, "running")
    expect(page.locator("main")).to_contain_text("resumed by ops (operator) via dashboard")
    assert plane.rollout(rid)["history"][-1]["message"] == "resumed by ops (operator) via dashboard"

    page.get_by_role("link", name="Abort…").click()
    abort = page.get_by_role("button", name="Abort", exact=True)
    abort.click()  # the box is not ticked: the browser does not send the form
    expect(page).to_have_url(re.compile(rf"/dashboard/rollouts/{rid}/abort$"))
    confirm = page.get_by_label("I mean it")
    assert confirm.evaluate("box => box.validity.valueMissing") is True
    assert plane.rollout(rid)["state"] == "running"
    confirm.check()
    abort.click()
    _expect_state(page, rid, "aborted")
    expect(page.locator("main")).to_contain_text("aborted by ops (operator) via dashboard")
    expect(page.locator("a.button")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("nothing to roll back")
    screenshot(page, "rollout-aborted")
    shown = plane.rollout(rid)
    assert (shown["state"], shown["reason"]) == (
        "aborted",
        "aborted by ops (operator) via dashboard",
    )
    assert plane.desired_version(ids[0]) == "1.0.0"  # the canary was sent back


def test_roll_back_a_completed_rollout_through_the_form(page: Page, plane: Plane) -> None:
    ids = plane.fleet_on_v1(2, fleet="rolling", prefix="rb")
    rid = int(plane.start({"gate": {"enabled": False}}, fleet="rolling")["id"])
    for device_id in ids:
        plane.obey(device_id)
    plane.tick()
    assert plane.rollout(rid)["state"] == "completed"
    base = _base(plane)
    sign_in(page, base, new_token(plane.http, "operator", "ops"))
    page.goto(f"{base}/dashboard/rollouts/{rid}")
    _expect_state(page, rid, "completed")

    page.get_by_role("link", name="Roll back 2 devices to their previous version…").click()
    page.get_by_label("I mean it").check()
    page.get_by_role("button", name="Roll back 2 devices to their previous version").click()
    expect(page).not_to_have_url(re.compile(rf"/dashboard/rollouts/{rid}(/rollback)?$"))
    back = int(page.url.rsplit("/", 1)[1])
    _expect_state(page, back, "running")
    rollback_of = page.locator("dl.facts dt", has_text="rollback of").locator("+ dd")
    expect(rollback_of).to_have_text(str(rid))
    screenshot(page, "rollback")
    assert plane.rollout(back)["rollback_of"] == rid
    assert [plane.desired_version(d) for d in ids] == ["1.0.0", "1.0.0"]

    rollback_of.get_by_role("link").click()  # the rolled-back rollout offers no 2nd one
    _expect_state(page, rid, "completed")
    expect(page.get_by_role("link", name=re.compile("^Roll back"))).to_have_count(0)
