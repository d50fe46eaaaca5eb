"""The dashboard at ``/dashboard``: sign-in with an API token, the pages, escaping, and
a real fleet (Mosquitto, a control-plane process, simulated agents) shown as it runs.

The first tests use the in-process control plane of the rollout tests (real uvicorn,
auth, driver, ingester; MQTT in memory; ``tests.support.rollout_plane``) on SQLite and on
PostgreSQL."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from controlplane.dashboard.session import csrf_token
from tests.support.fleet import open_fleet
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration


def _token(http: httpx.Client, role: str, name: str = "dash") -> dict[str, Any]:
    response = http.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _browser(base_url: str | httpx.URL) -> httpx.Client:
    """A client without an API token, as a browser is: cookies only, no redirects."""
    return httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)


def _sign_in(browser: httpx.Client, token: str, **headers: str) -> httpx.Response:
    return browser.post(
        "/dashboard/login",
        content=f"token={token}",
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )


def _page(browser: httpx.Client, path: str, status: int = 200) -> str:
    response = browser.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _text(html: str) -> str:
    """The page's text: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_pages_need_a_live_token_kept_in_a_strict_cookie(plane: Plane) -> None:
    viewer = _token(plane.http, "viewer")
    with _browser(plane.http.base_url) as browser:
        root = browser.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/dashboard"
        for path in ("/dashboard", "/dashboard/devices/d00", "/dashboard/rollouts/1"):
            response = browser.get(path)
            assert response.status_code == 303 and response.headers["location"] == (
                "/dashboard/login"
            )
        login = browser.get("/dashboard/login")
        assert login.status_code == 200 and 'name="token"' in login.text
        policy = login.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert login.headers["cache-control"] == "no-store"
        # same-origin, not no-referrer: under no-referrer browsers post "Origin: null"
        assert login.headers["referrer-policy"] == "same-origin"

        refused = _sign_in(browser, "efk_not-a-token-at-all-000000000000")
        assert refused.status_code == 401 and "invalid or revoked token" in refused.text
        assert "set-cookie" not in refused.headers
        cross = _sign_in(browser, viewer["token"], origin="https://evil.example")
        assert cross.status_code == 403 and "cross-site sign-in refused" in cross.text
        assert "set-cookie" not in cross.headers
        assert _sign_in(browser, "x" * 5000).status_code == 413
        for odd in (
            "&".join(f"f{i}=1" for i in range(9)) + f"&token={viewer['token']}",  # too many
            f"token={viewer['token']}&token={viewer['token']}",  # given twice
        ):
            crowded = browser.post(
                "/dashboard/login",
                content=odd,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert crowded.status_code == 401 and "set-cookie" not in crowded.headers

        signed = _sign_in(browser, viewer["token"], origin=str(plane.http.base_url).rstrip("/"))
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
        cookie = signed.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=strict", "path=/dashboard"):
            assert flag in cookie, cookie
        assert "secure" not in cookie  # plain HTTP here; set behind HTTPS
        page = _page(browser, "/dashboard")
        assert "signed in as dash (viewer)" in page
        assert '<meta http-equiv="refresh" content="5">' in page
        assert browser.get("/dashboard/login").status_code == 303  # already signed in

        # the cookie is not an API credential: the API still wants the bearer header
        api = browser.get(
            "/api/v1/devices", headers={"cookie": f"edgefleet_dashboard={viewer['token']}"}
        )
        assert api.status_code == 401

        # a revoked token signs the browser out at its next page
        revoked = plane.http.delete(f"/api/v1/tokens/{viewer['id']}")
        assert revoked.status_code == 200, revoked.text
        gone = browser.get("/dashboard")
        assert gone.status_code == 303 and gone.headers["location"] == "/dashboard/login"

    operator = _token(plane.http, "operator", name="ops")
    with _browser(plane.http.base_url) as browser:
        assert _sign_in(browser, operator["token"]).status_code == 303
        assert "signed in as ops (operator)" in _page(browser, "/dashboard")
        forced = browser.post("/dashboard/logout", headers={"origin": "https://evil.example"})
        assert forced.status_code == 403 and "set-cookie" not in forced.headers
        assert browser.get("/dashboard").status_code == 200  # still signed in
        out = browser.post("/dashboard/logout")
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
        assert 'edgefleet_dashboard=""' in out.headers["set-cookie"]
        browser.cookies.clear()
        assert browser.get("/dashboard").status_code == 303


def test_pages_show_fleets_devices_and_rollouts_escaped(plane: Plane) -> None:
    ids = plane.fleet_on_v1(4)
    plane.report("other-1", fleet="lab")
    rollout = plane.start({"canary": 1, "batches": 3})
    plane.obey(ids[0])
    plane.heartbeat(ids[0], ("1.0.0", 500, 0, 10.0), ("2.0.0", 7, 0, 10.5))
    plane.tick()
    with _browser(plane.http.base_url) as browser:
        assert _sign_in(browser, _token(plane.http, "viewer", "early")["token"]).status_code == 303
        judging = _text(_page(browser, f"/dashboard/rollouts/{rollout['id']}"))
        assert (
            "waiting health gate: waiting for 100 requests on 1 device; "
            "a device without them passes 300 s after it activated"
        ) in judging, judging
    plane.healthy_v2(ids[0])
    plane.tick()
    paused = plane.post(
        f"/rollouts/{rollout['id']}/pause", {"reason": "<b>store</b> opens & closes"}
    )
    assert paused["state"] == "paused"

    with _browser(plane.http.base_url) as browser:
        assert _sign_in(browser, _token(plane.http, "viewer")["token"]).status_code == 303
        home = _page(browser, "/dashboard")
        text = _text(home)
        assert "<b>store</b>" not in home
        assert "&lt;b&gt;store&lt;/b&gt; opens &amp; closes" in home  # the operator's reason
        assert re.search(r"\bf 4 4 4 0 1\b", text), text  # fleet f: 4 devices, 4 online ...
        assert re.search(r"\blab 1 1 0 0 0\b", text), text
        assert f'href="/dashboard/rollouts/{rollout["id"]}"' in home
        assert re.search(rf"\b{rollout['id']} det 2.0.0 f paused 1/4 1/4 0 0\b", text), text
        for device_id in [*ids, "other-1"]:
            assert f'href="/dashboard/devices/{device_id}"' in home
        assert re.search(r"\bd01 f online idle det 1.0.0 \S+ — 10.00 ms 500\b", text), text

        lab = _text(_page(browser, "/dashboard?fleet=lab"))
        assert "other-1" in lab and "d00" not in lab and "fleet lab" in lab
        unknown = _text(_page(browser, "/dashboard?fleet=nowhere", 404))
        assert "unknown fleet 'nowhere'" in unknown

        detail_html = _page(browser, f"/dashboard/rollouts/{rollout['id']}")
        detail = _text(detail_html)
        assert f"Rollout {rollout['id']}: det 2.0.0" in detail
        assert "previous version 1.0.0" in detail and "waiting for" not in detail
        # when a device still installing or retrying counts as failed (issue 13.1)
        assert "device deadline 600 s after its batch starts, a device not active has failed" in (
            detail
        )
        assert re.search(r"\b1 canary 1 done 1 0 0 0\b", detail), detail
        assert re.search(r"\b2 1 pending 0 0 0 1\b", detail), detail
        assert re.search(
            r"\bd00 1 activated p95 10.00 ms, 500 requests, 0 errors "
            r"p95 10.50 ms, 100 requests, 0 errors\b",
            detail,
        ), detail
        assert "<b>" not in detail_html
        assert "ago paused <b>store</b> opens & closes" in detail  # history, newest first

        device = _text(_page(browser, f"/dashboard/devices/{ids[1]}"))
        assert f"Device {ids[1]}" in device and "model det 1.0.0" in device
        # requests, errors, client errors, p50, p95, p99
        assert re.search(r"det 1.0.0 \S+ 500 0 0 5.00 ms 10.00 ms 12.00 ms", device), device
        assert "cpu 5.0 %" in device

        assert "unknown device 'nope'" in _text(_page(browser, "/dashboard/devices/nope", 404))
        assert "unknown rollout" in _text(_page(browser, "/dashboard/rollouts/999", 404))
        assert browser.get(f"/dashboard/rollouts/{2**64}").status_code == 422  # not a 500
        css = browser.get("/dashboard/style.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_dashboard_follows_a_real_fleet_through_a_rollout(tmp_path: Path) -> None:
    with open_fleet(tmp_path, count=3, fleet="store-eu") as stack:
        stack.push("1.0.0")
        first = stack.http.post(
            "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": "store-eu"}
        )
        assert first.status_code == 201, first.text
        stack.wait_versions({d: "1.0.0" for d in stack.fleet.device_ids}, "1.0.0 everywhere")
        stack.push("1.1.0", scale=3.0)
        strategy = {"canary": 1, "batches": 2, "gate": {"min_requests": 20}}
        second = stack.create_rollout("1.1.0", strategy)
        stack.wait_state(second["id"], "completed", timeout=120)
        viewer = _token(stack.http, "viewer")
        with _browser(stack.cp.url) as browser:
            assert _sign_in(browser, viewer["token"]).status_code == 303
            home = _text(_page(browser, "/dashboard"))
            assert re.search(r"\bstore-eu 3 3 3 0 0\b", home), home
            assert re.search(rf"\b{second['id']} det 1.1.0 store-eu completed 3/3 3/3 0 0\b", home)
            for device_id in stack.fleet.device_ids:
                # every device serves 1.1.0 and reports its latency from real inferences
                row = re.search(rf"\b{device_id} store-eu online active det 1.1.0 (.*?) ", home)
                assert row is not None, home
                assert re.search(
                    rf"\b{device_id} store-eu online active det 1.1.0 \S+ — \d+\.\d\d ms \d+", home
                ), home
            detail = _text(_page(browser, f"/dashboard/rollouts/{second['id']}"))
            assert "completed" in detail and "all 3 devices updated" in detail
            device_id = stack.fleet.device_ids[0]
            device = _text(_page(browser, f"/dashboard/devices/{device_id}"))
            assert "model det 1.1.0" in device and "Backend selection" in device


def _act(browser: httpx.Client, rollout_id: int, action: str, **fields: str) -> httpx.Response:
    return browser.post(
        f"/dashboard/rollouts/{rollout_id}/{action}",
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


def _csrf(html: str) -> str:
    found = set(re.findall(r'name="csrf" value="([0-9a-f]{64})"', html))
    assert len(found) == 1, html
    return found.pop()


def test_operators_pause_resume_abort_and_roll_back_from_the_page(plane: Plane) -> None:
    ids = plane.fleet_on_v1(3)
    rollout = plane.start({"canary": 1, "batches": 1})
    rid = rollout["id"]
    plane.healthy_v2(ids[0])
    plane.tick()
    viewer = _token(plane.http, "viewer")["token"]
    with _browser(plane.http.base_url) as browser:
        anonymous = _act(browser, rid, "abort", csrf="0" * 64, confirm="yes")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/dashboard/login"
        assert _sign_in(browser, viewer).status_code == 303
        html = _page(browser, f"/dashboard/rollouts/{rid}")
        assert 'class="button"' not in html and "Sign in with an operator token" in html
        form = browser.get(f"/dashboard/rollouts/{rid}/pause")
        assert form.status_code == 403 and "role viewer may not pause a rollout" in form.text
        refused = _act(browser, rid, "pause", csrf=csrf_token(viewer))
        assert refused.status_code == 403 and "role viewer may not pause a rollout" in refused.text
    assert plane.rollout(rid)["state"] == "running"

    with _browser(plane.http.base_url) as browser:
        assert _sign_in(browser, _token(plane.http, "operator", "ops")["token"]).status_code == 303
        html = _page(browser, f"/dashboard/rollouts/{rid}")
        for action in ("pause", "abort"):
            assert f'class="button" href="/dashboard/rollouts/{rid}/{action}"' in html
        for action in ("resume", "rollback"):  # a running rollout is rolled back by an abort
            assert f'href="/dashboard/rollouts/{rid}/{action}"' not in html
        assert "csrf" not in html  # the live page (refreshed every 5 s) holds no form
        early = browser.get(f"/dashboard/rollouts/{rid}/resume")
        assert early.status_code == 409 and "it cannot resume now" in early.text
        pause_form = _page(browser, f"/dashboard/rollouts/{rid}/pause")
        assert 'http-equiv="refresh"' not in pause_form  # what is typed stays
        assert (
            f'<form class="action" method="post" action="/dashboard/rollouts/{rid}/pause">'
            in pause_form
        )
        csrf = _csrf(pause_form)
        assert 'name="confirm"' in _page(browser, f"/dashboard/rollouts/{rid}/abort")

        stale = _act(browser, rid, "pause", csrf="0" * 64)
        assert stale.status_code == 403 and "this form is stale: reload the page" in stale.text
        for origin in ("https://evil.example", "null"):  # "null": a sandboxed frame, say
            cross = browser.post(
                f"/dashboard/rollouts/{rid}/pause",
                content=f"csrf={csrf}",
                headers={"content-type": "application/x-www-form-urlencoded", "origin": origin},
            )
            assert cross.status_code == 403
        assert plane.rollout(rid)["state"] == "running"

        paused = _act(browser, rid, "pause", csrf=csrf, reason="store <opening> hours")
        assert (
            paused.status_code == 303 and paused.headers["location"] == f"/dashboard/rollouts/{rid}"
        )
        shown = plane.rollout(rid)
        assert (shown["state"], shown["reason"]) == ("paused", "store <opening> hours")
        html = _page(browser, f"/dashboard/rollouts/{rid}")
        assert f'href="/dashboard/rollouts/{rid}/resume"' in html
        assert "store &lt;opening&gt; hours" in html

        assert _act(browser, rid, "resume", csrf=csrf).status_code == 303
        shown = plane.rollout(rid)
        assert shown["state"] == "running"
        assert shown["history"][-1]["message"] == "resumed by ops (operator) via dashboard"
        again = _act(browser, rid, "resume", csrf=csrf)
        assert again.status_code == 409
        assert "only a paused rollout can be resumed" in _text(again.text)

        unsure = _act(browser, rid, "abort", csrf=csrf)
        assert unsure.status_code == 400 and "tick the box to confirm the abort" in unsure.text
        assert _act(browser, rid, "abort", csrf=csrf, confirm="yes").status_code == 303
        aborted = plane.rollout(rid)
        assert aborted["state"] == "aborted"
        assert aborted["reason"] == "aborted by ops (operator) via dashboard"
        assert plane.desired_version(ids[0]) == "1.0.0"  # the canary was sent back

        # the abort sent every updated device back: a rollback is not offered, nor done
        html = _page(browser, f"/dashboard/rollouts/{rid}")
        assert f'href="/dashboard/rollouts/{rid}/rollback"' not in html
        assert "nothing to roll back" in _text(html)
        back = _act(browser, rid, "rollback", csrf=csrf, confirm="yes")
        assert back.status_code == 409 and "nothing to roll back" in _text(back.text)
