"""Figures over time: a device's heartbeat history drawn as charts, its timeline (events,
status changes, errors, selections with every candidate's figures, rollouts), a rollout's
batches before and after, and the fleet cohort view; through the API and the dashboard.

The in-process control plane of the rollout tests (real app, ingester, driver; SQLite and
PostgreSQL) with devices played from real protocol messages, heartbeats dated over the
last hour."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from controlplane.models import utcnow
from edgectl.cli import main as edgectl_main
from protocol import (
    ActiveModel,
    CandidateFigures,
    DeviceStatus,
    Heartbeat,
    ModelMetrics,
    SelectionReport,
    StateReport,
    TopicKind,
)
from tests.support.controlplane import ADMIN_TOKEN, DET_V1_DIGEST
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration

ORT = "onnxruntime:cpu:fp32"
OV = "openvino:CPU:fp32"
PROFILES = {"d00": "x86-avx2", "d01": "arm64-neon"}
BACKENDS = {"d00": ORT, "d01": OV}


def _selection(device_id: str) -> SelectionReport:
    return SelectionReport(
        chosen=BACKENDS[device_id],
        reason="lowest p50 within the accuracy guard",
        profile=PROFILES[device_id],
        elapsed_s=1.5,
        candidates=[
            CandidateFigures(key=ORT, p50_ms=1.25, p99_ms=2.0, runs=40, rel_error=0.0),
            CandidateFigures(key=OV, p50_ms=1.75, p99_ms=2.5, runs=40, rel_error=1e-6),
            CandidateFigures(key="openvino:CPU:bf16", excluded="max abs error 2.1 % > 1 %"),
        ],
    )


def _state(plane: Plane, device_id: str, *, error: str | None = None) -> None:
    """What the agent reports once det 1.0.0 is active, with its profile and selection."""
    _, generation = plane.running[device_id]
    active = ActiveModel(
        name="det",
        version="1.0.0",
        bundle_digest=DET_V1_DIGEST,
        backend=BACKENDS[device_id],
        selection=_selection(device_id),
    )
    report = StateReport(
        device_id=device_id,
        fleet="f",
        agent_version="test",
        status=DeviceStatus.FAILED if error else DeviceStatus.IDLE,
        generation=generation,
        active=[active],
        last_error=error,
        profile=PROFILES[device_id],
    )
    plane.send(device_id, TopicKind.STATE, report)


def _heartbeat(plane: Plane, device_id: str, at: datetime, step: int) -> None:
    """Cumulative counts: d00 100 requests and 1 error a step, p95 10 + step ms; d01
    1000 requests a step, no error, 5 ms."""
    slow = device_id == "d00"
    figures = ModelMetrics(
        name="det",
        version="1.0.0",
        backend=BACKENDS[device_id],
        requests=(100 if slow else 1000) * (step + 1),
        errors=step if slow else 0,
        p50_ms=4.0 if slow else 2.0,
        p95_ms=10.0 + step if slow else 5.0,
        p99_ms=20.0,
    )
    heartbeat = Heartbeat(
        device_id=device_id,
        at=at,
        cpu_percent=5.0,
        rss_bytes=1,
        mem_total_bytes=2,
        mem_available_bytes=1,
        mem_percent=50.0,
        load_avg=(0.1, 0.1, 0.1),
        uptime_s=10.0,
        models=[figures],
    )
    plane.send(device_id, TopicKind.HEARTBEAT, heartbeat)


@pytest.fixture
def fleet(plane: Plane) -> Iterator[Plane]:
    """d00 and d01 on det 1.0.0 (different backends and profiles), five heartbeats each
    over the last 50 minutes, and d00's last report an error."""
    for device_id in PROFILES:
        plane.report(device_id)
    plane.post("/deployments", {"model": "det", "version": "1.0.0", "fleet": "f"}, 201)
    now = utcnow()
    for device_id in PROFILES:
        plane.obey(device_id)
        _state(plane, device_id)
        for step, minutes_ago in enumerate((50, 40, 30, 20, 10)):
            _heartbeat(plane, device_id, now - timedelta(minutes=minutes_ago), step)
    _state(plane, "d00", error="inference failed: out of memory")
    yield plane


@contextmanager
def _signed_in(plane: Plane) -> Iterator[httpx.Client]:
    token = plane.post("/tokens", {"name": "watcher", "role": "viewer"}, 201)["token"]
    with httpx.Client(base_url=plane.http.base_url, follow_redirects=False, timeout=30) as b:
        signed = b.post(
            "/dashboard/login",
            content=f"token={token}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert signed.status_code == 303, signed.text
        yield b


def _points(html: str, series: str) -> list[float]:
    """The values of one series' data points in a page's charts."""
    found = re.findall(rf'data-series="{re.escape(series)}"[^>]*data-value="([^"]+)"', html)
    return [float(v) for v in found]


def test_the_timeline_keeps_events_changes_errors_selections_and_rollouts(fleet: Plane) -> None:
    entries: list[dict[str, Any]] = fleet.get("/devices/d00/timeline")
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True)
    messages = {(e["kind"], e["message"]) for e in entries}
    assert ("deployment", "received") in messages and ("deployment", "activated") in messages
    assert ("error", "inference failed: out of memory") in messages
    assert ("status", "idle → failed") in messages
    (selection,) = [e for e in entries if e["kind"] == "selection"]
    assert selection["model"] == "det" and selection["version"] == "1.0.0"
    assert selection["message"] == f"chose {ORT}: lowest p50 within the accuracy guard"
    keys = [c["key"] for c in selection["detail"]["candidates"]]
    assert keys == [ORT, OV, "openvino:CPU:bf16"]
    assert selection["detail"]["candidates"][1]["p50_ms"] == 1.75
    # the same selection reported again is not a new entry
    _state(fleet, "d00")
    again = fleet.get("/devices/d00/timeline?kind=selection")
    assert len(again) == 1
    # a rollout that touches the device is on it, with its id
    started = fleet.start({"canary": 1, "batches": 1, "gate": {"enabled": False}})
    fleet.tick()
    rollouts = fleet.get("/devices/d00/timeline?kind=rollout")
    assert [e["rollout_id"] for e in rollouts] == [started["id"]]
    assert "rollout of det 2.0.0 (batch 1)" in rollouts[0]["message"]
    missing = fleet.http.get("/api/v1/devices/nosuch/timeline")
    assert missing.status_code == 404


def test_cohorts_split_the_fleet_by_version_backend_and_profile(fleet: Plane) -> None:
    cohorts = {(c["backend"], c["profile"]): c for c in fleet.get("/cohorts?window=1h")}
    assert set(cohorts) == {(ORT, "x86-avx2"), (OV, "arm64-neon")}
    slow, fast = cohorts[(ORT, "x86-avx2")], cohorts[(OV, "arm64-neon")]
    # the traffic inside the window: the highest cumulative count minus the lowest
    assert (slow["devices"], slow["requests"], slow["errors"]) == (1, 400, 4)
    assert slow["error_percent"] == pytest.approx(1.0)
    assert slow["worst_p95_ms"] == 14.0 and slow["p50_ms"] == 4.0
    assert (fast["requests"], fast["errors"], fast["p95_ms"]) == (4000, 0, 5.0)
    # a quarter of an hour holds one sample of each: no traffic measured in it
    recent = fleet.get("/cohorts?window=15m")
    assert {c["requests"] for c in recent} == {0} and len(recent) == 2
    assert fleet.get("/cohorts?window=1h&model=nosuch") == []
    assert len(fleet.get("/cohorts?window=1h&fleet=f")) == 2
    refused = fleet.http.get("/api/v1/cohorts?window=2h")
    assert refused.status_code == 422


def test_the_dashboard_draws_history_timeline_cohorts_and_batches(fleet: Plane) -> None:
    with _signed_in(fleet) as browser:
        page = browser.get("/dashboard/devices/d00?window=1h").text
        assert 'class="chart lines"' in page
        # five samples: four intervals, each a point; 100 requests in 10 minutes
        assert _points(page, "p95") == [11.0, 12.0, 13.0, 14.0]
        assert _points(page, "requests/min") == [10.0] * 4
        assert _points(page, "errors/min") == [0.1] * 4
        assert "inference failed: out of memory" in page
        assert "max abs error 2.1 % &gt; 1 %" in page  # a candidate's exclusion, escaped
        assert re.search(r'<time datetime="[0-9T:-]+Z" title="[0-9T:-]+Z">', page)
        narrow = browser.get("/dashboard/devices/d00?window=15m").text
        assert _points(narrow, "p95") == []  # one sample: no interval to draw
        assert browser.get("/dashboard/devices/d00?window=2h").status_code == 422

        cohorts = browser.get("/dashboard/cohorts?window=1h").text
        assert _points(cohorts, "worst p95") == [14.0, 5.0]  # onnxruntime, then openvino
        assert "arm64-neon" in cohorts and "x86-avx2" in cohorts

        started = fleet.start({"canary": 1, "batches": 1, "gate": {"enabled": False}})
        fleet.tick()
        for device_id in PROFILES:
            if fleet.has_news(device_id):
                fleet.healthy_v2(device_id, p95=12.0, errors=1)
        fleet.tick(3)
        rollout = browser.get(f"/dashboard/rollouts/{started['id']}").text
        assert 'class="chart bars"' in rollout
        after = _points(rollout, "after")
        assert 12.0 in after  # the canary's worst p95 on 2.0.0
        assert 'data-group="canary"' in rollout
        timeline = browser.get("/dashboard/devices/d00").text
        assert f'href="/dashboard/rollouts/{started["id"]}"' in timeline


def test_edgectl_shows_the_timeline_and_the_cohorts(
    fleet: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--url", str(fleet.http.base_url), "--token", ADMIN_TOKEN]
    assert edgectl_main([*base, "timeline", "d00", "--kind", "selection"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WHEN", "KIND", "MODEL", "WHAT", "ROLLOUT"]
    assert f"chose {ORT}" in lines[1]
    assert lines[2].strip() == f"* {ORT}: p50 1.25 ms, p99 2.00 ms, 40 runs"
    assert lines[4].strip() == "openvino:CPU:bf16: max abs error 2.1 % > 1 %"
    assert edgectl_main([*base, "timeline", "d00", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["kind"] for e in entries} >= {"deployment", "error", "selection", "status"}

    assert edgectl_main([*base, "cohorts", "--window", "1h"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and "x86-avx2" in rows[1] and "arm64-neon" in rows[2]
    assert rows[1].split()[5:8] == ["400", "4", "1"]  # requests, errors, error rate 1 %
    assert edgectl_main([*base, "cohorts", "--json", "--model", "det"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert edgectl_main([*base, "timeline", "nosuch"]) != 0
    assert "unknown device 'nosuch'" in capsys.readouterr().err
