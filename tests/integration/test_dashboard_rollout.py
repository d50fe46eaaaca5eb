"""The rollout page (issue 17.6): the strategy and gate thresholds, the canary batch
labelled, when the next batch starts (an absolute time and the time left, or what it
waits for), a colour per state, and the work an abort never started shown as skipped.

On the in-process control plane of the rollout tests (``tests.support.rollout_plane``),
SQLite then PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from tests.support.dashboard_client import html_of, make_token, signed_in, text_of
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration

STRATEGY = {"canary": 1, "batches": 3, "wait_s": 120, "gate": {"min_requests": 50}}


def test_the_rollout_page_shows_strategy_canary_next_batch_and_skipped(plane: Plane) -> None:
    ids = plane.fleet_on_v1(4)
    rollout = plane.start(STRATEGY)
    rid = rollout["id"]
    plane.tick()
    with signed_in(plane.http.base_url, make_token(plane.http, "viewer")) as browser:
        page = text_of(html_of(browser, f"/dashboard/rollouts/{rid}"))
        for shown in [
            "canary 1 device, then 3 batches",
            "wait between batches 120 s (2m)",
            "install timeout 600 s (10m)",
            "failure threshold no limit",
            "health gate on",
            "gate min requests 50",
            "latency threshold p95 more than 25% and 5 ms over the device's baseline",
            "error threshold error rate more than 1 percentage points over the device's baseline",
            "no traffic a device passes 300 s (5m) after it activated",
            "on regression pause",
            "next batch batch 2 starts once batch 1 is done (0 of 1 finished, then judged "
            "by the gate) and 120 s (2m) after that",
        ]:
            assert shown in page, (shown, page)
        assert re.search(r"\b1 canary 1 running 0 0 0 1\b", page), page
        assert re.search(r"\b2 1 pending 0 0 0 1\b", page), page  # no canary mark

        plane.healthy_v2(ids[0])
        plane.tick(2)  # activated, then judged
        shown = plane.rollout(rid)
        assert shown["batches"][0]["state"] == "done", shown
        done_at = datetime.fromisoformat(shown["batches"][0]["done_at"])
        starts = (done_at + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
        html = html_of(browser, f"/dashboard/rollouts/{rid}")
        assert f'batch 2 starts at <time datetime="{starts}">{starts}</time>' in html, html
        # the seconds left, counted by the server (the page has no script)
        left = re.search(r'<span class="countdown">in (?:(\d+)m)? ?(?:(\d+)s)?</span>', html)
        assert left is not None, html
        seconds = int(left.group(1) or 0) * 60 + int(left.group(2) or 0)
        assert 60 < seconds <= 120, left.group(0)
        assert re.search(r"\b1 canary 1 done 1 0 0 0\b", text_of(html))

        plane.tick(after_s=121)  # the wait is over: batch 2 starts
        assert "batch 3 starts once batch 2 is done" in text_of(
            html_of(browser, f"/dashboard/rollouts/{rid}")
        )

        plane.post(f"/rollouts/{rid}/abort", {"reason": "enough"})
        html = html_of(browser, f"/dashboard/rollouts/{rid}")
        page = text_of(html)
        assert "next batch" not in page
        for batch in (3, 4):  # after the canary, 3 batches of one device: 4 in all
            assert re.search(rf"\b{batch} 1 skipped 0 0 0 0 — —", page), page  # never started
        skipped = [d for d in plane.rollout(rid)["devices"] if d["status"] == "skipped"]
        assert [d["device_id"] for d in skipped] == ids[2:]
        assert re.search(rf"\b{ids[2]} 3 skipped — — \b", page), page
        for state in ("aborted", "skipped", "done"):
            assert f'class="badge b-{state}"' in html, state


def test_a_paused_rollout_waits_for_its_operator(plane: Plane) -> None:
    plane.fleet_on_v1(3)
    rollout = plane.start({"batches": 3})
    plane.tick()
    plane.post(f"/rollouts/{rollout['id']}/pause", {"reason": "lunch"})
    with signed_in(plane.http.base_url, make_token(plane.http, "viewer")) as browser:
        html = html_of(browser, f"/dashboard/rollouts/{rollout['id']}")
        page = text_of(html)
        assert "next batch none while the rollout is paused: resume it to go on" in page
        assert "canary none: 3 batches" in page and "canary 1" not in page
        assert 'class="badge b-paused"' in html and "b-gate" not in html
        assert 'class="badge b-running"' in html  # the batch; paused is not running's colour
