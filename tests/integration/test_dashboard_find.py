"""Finding devices on the dashboard (issue 17.5): the GET form's filters narrow the list
(status, version, online, profile, label, fleet, a part of the id), pages follow each
other with the filters kept, an unknown fleet is a 404, what needs attention is listed
first, and relative times carry their UTC time.

On the in-process control plane of the rollout tests (``tests.support.rollout_plane``),
SQLite then PostgreSQL."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlencode

import httpx
import pytest

from protocol import Availability, DeviceStatus, StateReport, TopicKind
from tests.support.dashboard_client import device_ids, html_of, make_token, signed_in, text_of
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration

LAB = [f"lab-{i:02d}" for i in range(25)]


def _register(plane: Plane, device_id: str, *, profile: str, failed: bool = False) -> None:
    """``device_id`` reports itself in fleet ``lab`` with hardware ``profile``."""
    report = StateReport(
        device_id=device_id,
        fleet="lab",
        agent_version="test",
        status=DeviceStatus.FAILED if failed else DeviceStatus.IDLE,
        generation=0,
        active=[],
        last_error="cannot open the camera" if failed else None,
        profile=profile,
    )
    plane.send(device_id, TopicKind.STATE, report)


def _lab(plane: Plane) -> None:
    """25 lab devices: even ones xeon, odd ones arm; every third labelled site=north;
    lab-07 failed, lab-05 offline."""
    for i, device_id in enumerate(LAB):
        _register(plane, device_id, profile="xeon" if i % 2 == 0 else "arm", failed=i == 7)
    for device_id in LAB[::3]:
        labelled = plane.http.patch(
            f"/api/v1/devices/{device_id}/labels", json={"set": {"site": "north"}}
        )
        assert labelled.status_code == 200, labelled.text
    gone = Availability(device_id="lab-05", online=False)
    plane.send("lab-05", TopicKind.AVAILABILITY, gone)


def _listed(browser: httpx.Client, **params: str) -> list[str]:
    return device_ids(html_of(browser, "/dashboard?" + urlencode(params)))


def test_filters_narrow_the_device_list(plane: Plane) -> None:
    on_v1 = plane.fleet_on_v1(3)
    _lab(plane)
    with signed_in(plane.http.base_url, make_token(plane.http, "viewer")) as browser:
        assert _listed(browser) == [*on_v1, *LAB]  # in id order
        assert _listed(browser, fleet="lab") == LAB
        assert _listed(browser, status="failed") == ["lab-07"]
        assert _listed(browser, version="1.0.0") == on_v1
        assert _listed(browser, online="no") == ["lab-05"]
        assert _listed(browser, online="yes") == [d for d in [*on_v1, *LAB] if d != "lab-05"]
        assert _listed(browser, profile="arm") == LAB[1::2]
        assert _listed(browser, label="site=north") == LAB[::3]
        assert _listed(browser, q="B-1") == LAB[10:20]  # any case, anywhere in the id
        both = _listed(browser, fleet="lab", profile="xeon", label="site = north", q="")
        assert both == LAB[::6]

        page = html_of(browser, "/dashboard?" + urlencode({"profile": "arm", "status": "idle"}))
        assert 'name="profile" value="arm"' in page  # the form shows what was asked
        assert '<option value="idle" selected>' in page
        assert '<form class="filters" method="get" action="/dashboard">' in page
        assert "No device matches." in html_of(browser, "/dashboard?q=nothing-like-it")

        for query, message in [
            ("online=maybe", "online must be yes or no, not 'maybe'"),
            ("label=site", "label: invalid selector term 'site': expected key=value"),
            ("limit=0", "limit must be a whole number from 1 to 1000, not '0'"),
        ]:
            refused = text_of(html_of(browser, f"/dashboard?{query}", 400))
            assert message in refused, refused
        unknown = html_of(browser, "/dashboard?fleet=nosuch", 404)
        assert "unknown fleet 'nosuch'" in text_of(unknown) and "Traceback" not in unknown


def _next(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)">next devices →</a>', html)
    return unescape(found.group(1)) if found else None


def test_pages_follow_each_other_with_the_filters_kept(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    _lab(plane)
    pages: list[list[str]] = []
    with signed_in(plane.http.base_url, make_token(plane.http, "viewer")) as browser:
        url: str | None = "/dashboard?" + urlencode({"fleet": "lab", "limit": "4"})
        while url is not None:
            html = html_of(browser, url)
            pages.append(device_ids(html))
            if len(pages) > 1:  # a later page links back to the first
                assert "← first devices" in html and "Devices after" in html
            url = _next(html)
            if url is not None:
                assert "fleet=lab" in url and "limit=4" in url
        assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 4, 1]
        assert [d for p in pages for d in p] == LAB  # none twice, none left out

        # the API answers the same filters with the same query code
        api = plane.http.get(
            "/api/v1/devices", params={"fleet": "lab", "profile": "xeon", "limit": 3}
        )
        assert [d["id"] for d in api.json()] == LAB[0:6:2]
        assert api.headers["X-Next-After"] == "lab-04"
        failed = plane.http.get("/api/v1/devices", params={"status": "failed", "online": True})
        assert [d["id"] for d in failed.json()] == ["lab-07"]


def test_what_needs_attention_comes_first(plane: Plane) -> None:
    ids = plane.fleet_on_v1(3)
    _lab(plane)
    rollout = plane.start({"canary": 1, "batches": 2})
    plane.tick()
    plane.healthy_v2(ids[0], p95=50.0)  # five times slower than 1.0.0: the gate pauses
    plane.tick(2)
    shown = plane.rollout(rollout["id"])
    assert shown["state"] == "paused" and shown["reason"].startswith("latency gate: d00"), shown
    with signed_in(plane.http.base_url, make_token(plane.http, "viewer")) as browser:
        html = html_of(browser, "/dashboard")
        attention = html.split('<section class="attention">', 1)[1].split("</section>", 1)[0]
        assert html.index('class="attention"') < html.index("<h2>Fleets</h2>")  # on top
        text = text_of(attention)
        assert (
            f"rollout {rollout['id']} det 2.0.0 to f paused paused by gate : latency gate: d00"
            in (text)
        ), text
        assert f"d00 regressed in rollout {rollout['id']} : p95 50.0 ms" in text, text
        assert "lab-07 failed : cannot open the camera" in text, text
        assert 'class="badge b-gate"' in attention and 'class="badge b-regressed"' in attention

        rows = html.split("<h2>Rollouts</h2>", 1)[1]
        assert 'class="badge b-gate">paused by gate</span>' in rows.split("</table>", 1)[0]
        assert '<span class="badge b-failed">failed</span>' in html  # lab-07's row

        # every relative time says its UTC time on hover
        times = re.findall(r'<time datetime="([^"]+)" title="([^"]+)">[^<]* ago</time>', html)
        assert times and all(
            a == b and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a) for a, b in times
        ), times
        assert " ago<" not in re.sub(r"<time [^>]+>[^<]*</time>", "", html)

    # an operator's pause is not the gate's, even with a reason that reads like one
    for reason in ("store hours", "latency gate: d00 looks slow to me"):
        plane.post(f"/rollouts/{rollout['id']}/resume")
        plane.post(f"/rollouts/{rollout['id']}/pause", {"reason": reason})
        with signed_in(plane.http.base_url, make_token(plane.http, "viewer", "v2")) as browser:
            html = html_of(browser, "/dashboard")
            assert "b-gate" not in html and "paused by gate" not in html
