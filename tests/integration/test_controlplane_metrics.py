"""Control-plane observability (issue 16.3), on a real control plane (uvicorn, its MQTT
bridge on a private Mosquitto; SQLite, then PostgreSQL): ``/metrics`` in Prometheus text
with reports by kind and outcome, devices by fleet and status, rollouts by state, API
latency by route template, the database pool and the MQTT link; ``/healthz`` and
``/readyz``; JSON log lines; and the Grafana dashboard in ``docker/`` asks only for
metrics the control plane exports."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.log_format import JsonFormatter
from protocol import DeviceStatus, Heartbeat, ModelMetrics, StateReport, TopicKind, encode
from tests.support.controlplane import ADMIN_TOKEN, run_controlplane
from tests.support.mosquitto import Broker
from tests.support.mqtt_plane import ControlPlane
from tests.support.ports import wait_until
from tests.support.rollout_plane import Plane
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _samples(cp: ControlPlane) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = cp.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _beat(device_id: str) -> bytes:
    figures = ModelMetrics(name="det", version="1.0.0", backend="b", requests=5, errors=0)
    return encode(
        Heartbeat(
            device_id=device_id, cpu_percent=1.0, rss_bytes=1, mem_total_bytes=2,
            mem_available_bytes=1, mem_percent=50.0, load_avg=(0.0, 0.0, 0.0), uptime_s=1.0,
            models=[figures],
        )
    )  # fmt: skip


def test_metrics_count_reports_devices_rollouts_and_api_latency(cp: ControlPlane) -> None:
    for device_id, fleet in (("m1", "north"), ("m2", "north"), ("m3", "south")):
        cp.report(device_id, fleet)
    for device_id in ("m1", "m2"):
        cp.send(device_id, TopicKind.HEARTBEAT, _beat(device_id), retain=False)
    cp.send("m3", TopicKind.HEARTBEAT, b"not json at all", retain=False)  # sealed, malformed
    forged = StateReport(
        device_id="m1", fleet="north", agent_version="x", status=DeviceStatus.IDLE, generation=0
    )
    cp.mqtt.publish("edgefleet/v1/devices/m1/state", encode(forged))  # not sealed
    wait_until(
        lambda: _value(_samples(cp), "edgefleet_reports_applied_total", kind="heartbeat") == 2,
        10,
        "heartbeats applied",
    )
    wait_until(
        lambda: _value(_samples(cp), "edgefleet_reports_rejected_total", kind="state",
                       reason="unauthenticated") == 1,
        10,
        "the forged report counted",
    )  # fmt: skip
    assert cp.http.get("/api/v1/devices/m1").status_code == 200
    assert cp.http.get("/api/v1/devices/nobody").status_code == 404
    assert cp.http.get("/no/such/path").status_code == 404

    samples = _samples(cp)
    assert _value(samples, "edgefleet_reports_applied_total", kind="state") == 3
    assert _value(samples, "edgefleet_reports_received_total", kind="heartbeat") == 3
    assert _value(samples, "edgefleet_reports_rejected_total", kind="heartbeat",
                  reason="malformed") == 1  # fmt: skip
    assert _value(samples, "edgefleet_mqtt_connected") == 1
    assert _value(samples, "edgefleet_ingest_queue_reports") == 0
    assert _value(samples, "edgefleet_devices", fleet="north", status="idle") == 2
    assert _value(samples, "edgefleet_devices", fleet="south", status="idle") == 1
    assert _value(samples, "edgefleet_database_up") == 1
    assert _value(samples, "edgefleet_db_pool_size") >= 1
    route = "/api/v1/devices/{device_id}"
    for status in ("200", "404"):
        count = _value(samples, "edgefleet_http_request_duration_seconds_count",
                       method="GET", route=route, status=status)  # fmt: skip
        assert count == 1, (status, count)
    assert _value(samples, "edgefleet_http_request_duration_seconds_count",
                  method="GET", route="unmatched", status="404") == 1  # fmt: skip
    assert not any("nobody" in str(labels) for _, labels in samples)  # templates, not paths


def test_metrics_need_a_token_and_health_answers_without(cp: ControlPlane) -> None:
    with httpx.Client(base_url=str(cp.http.base_url)) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "database": "ok", "broker": "ok"}


def test_readyz_says_503_while_the_broker_is_away(cp: ControlPlane, mosquitto: Broker) -> None:
    mosquitto.process.terminate()
    wait_until(lambda: cp.http.get("/readyz").status_code == 503, 15, "not ready")
    assert cp.http.get("/readyz").json() == {
        "ready": False, "database": "ok", "broker": "disconnected",
    }  # fmt: skip
    assert _value(_samples(cp), "edgefleet_mqtt_connected") == 0


def test_log_lines_are_json_objects_with_log_format_json(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit
) -> None:
    env = os.environ | {"EDGEFLEET_LOG_FORMAT": "xml"}
    bad = subprocess.run(
        [sys.executable, "-m", "controlplane.cli"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "EDGEFLEET_LOG_FORMAT='xml'" in bad.stderr
    with (
        run_controlplane(
            tmp_path,
            mqtt_url=mosquitto.url,
            trust_kit=trust_kit,
            extra_args=["--log-format", "json"],
        ) as process,
        process.client() as http,
    ):
        assert http.get("/api/v1/devices").status_code == 200
        wait_until(lambda: "/api/v1/devices" in process.log.read_text(), 10, "access log")
        lines = [line for line in process.log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "message", "thread"} <= set(entries[0])
    assert any("/api/v1/devices" in e["message"] for e in entries)
    assert not any(ADMIN_TOKEN in line for line in lines)

    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "controlplane.x", logging.ERROR, __file__, 1, "failed %s", ("it",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line and "boom" in entry["exception"]
    assert (entry["level"], entry["message"]) == ("ERROR", "failed it")
    assert entry["ts"].endswith("+00:00")


def test_the_grafana_dashboard_asks_for_exported_metrics(cp: ControlPlane) -> None:
    cp.report("g1", "north")
    wait_until(lambda: cp.device("g1") is not None, 10, "device registered")
    cp.http.get("/api/v1/devices")
    text = cp.http.get("/metrics").text
    families = {family.name for family in text_string_to_metric_families(text)}  # no suffix
    dashboard = json.loads((ROOT / "docker" / "grafana" / "edgefleet.json").read_text())
    wanted = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            wanted |= set(re.findall(r"edgefleet_[a-z_]+", target["expr"]))
    assert wanted, "no queries"
    missing = {w for w in wanted if re.sub(r"_(total|count|bucket|sum)$", "", w) not in families}
    assert not missing, missing


def test_rollouts_by_state(plane: Plane) -> None:
    plane.fleet_on_v1(3)
    rollout = plane.start({"canary": 1, "batches": 2, "gate": {"enabled": False}})
    response = plane.http.get("/metrics")
    assert response.status_code == 200
    states = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "edgefleet_rollouts"
        for sample in family.samples
    }
    assert states == {"running": 1}
    plane.post(f"/rollouts/{rollout['id']}/abort", {})
    response = plane.http.get("/metrics")
    assert 'edgefleet_rollouts{state="aborted"} 1.0' in response.text
