"""Per-model figures in real heartbeats: a real agent (signed bundles, real Mosquitto,
ONNX Runtime, OIP REST) serves requests through both APIs; its heartbeats carry the
counts, error kinds and latency percentiles of the version they were measured on, split
at a hot swap; and the control plane (real app, real uvicorn) shows them in
``GET /api/v1/devices/{id}``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from agent import Agent, InvalidInput
from agent.enrollment import enroll_device
from controlplane.app import create_app
from protocol import EventKind, Heartbeat, ModelMetrics, TopicKind, device_topic
from tests.support.controlplane import api_client, serve_app, settings
from tests.support.deploy import DEVICE, Setup
from tests.support.identity import report_of
from tests.support.mosquitto import Broker
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration

X: dict[str, np.ndarray] = {"x": np.ones((2, 4), np.float32), "ids": np.array([1, 2], np.int64)}
REST_BODY = {
    "inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "ids", "shape": [1], "datatype": "INT64", "data": [7]},
    ]
}


class Heartbeats:
    """A test-side MQTT client that records the device's heartbeats in order."""

    def __init__(self, broker: Broker) -> None:
        self._lock = threading.Lock()
        self._beats: list[Heartbeat] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-heartbeats")
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port)
        self._client.subscribe(device_topic(DEVICE, TopicKind.HEARTBEAT), qos=0)
        self._client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._beats.append(report_of(Heartbeat, msg.payload))

    def all(self) -> list[Heartbeat]:
        with self._lock:
            return list(self._beats)

    def wait(self, predicate: Callable[[Heartbeat], bool], what: str) -> Heartbeat:
        wait_until(lambda: any(predicate(b) for b in self.all()), 20, what)
        return next(b for b in self.all() if predicate(b))

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def heartbeats(setup: Setup) -> Iterator[Heartbeats]:
    recorder = Heartbeats(setup.broker)
    try:
        yield recorder
    finally:
        recorder.close()


def _figures(beat: Heartbeat, version: str) -> ModelMetrics | None:
    return next((m for m in beat.models if m.name == "det" and m.version == version), None)


def _has(version: str, requests: int) -> Callable[[Heartbeat], bool]:
    def check(beat: Heartbeat) -> bool:
        figures = _figures(beat, version)
        return figures is not None and figures.requests == requests

    return check


def _deploy(setup: Setup, generation: int, version: str, weight: float) -> None:
    bundle = setup.bundle("det", version, weight=weight)
    setup.watcher.desire(generation, setup.assignment(bundle, deployment_id=generation))
    wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds(version), 20, version)


def _serve_some(agent: Agent) -> None:
    """8 requests on the active model: 5 good, 1 bad in-process, 1 good + 1 bad REST."""
    for _ in range(5):
        agent.infer("det", X)
    with pytest.raises(InvalidInput):
        agent.infer("det", {"x": X["x"].astype(np.float64), "ids": X["ids"]})
    url = f"{agent.local_api_url}/v2/models/det/infer"
    assert httpx.post(url, json=REST_BODY, timeout=10).status_code == 200
    missing = {"inputs": REST_BODY["inputs"][:1]}
    assert httpx.post(url, json=missing, timeout=10).status_code == 400


def test_heartbeats_carry_per_version_figures_across_a_hot_swap(
    setup: Setup, heartbeats: Heartbeats
) -> None:
    with setup.agent(heartbeat_interval_s=0.2) as agent:
        _deploy(setup, 1, "1.0.0", 0.5)
        _serve_some(agent)
        beat = heartbeats.wait(_has("1.0.0", 8), "heartbeat with det 1.0.0 figures")
        v1 = _figures(beat, "1.0.0")
        # the 400s (one in-process, one over REST) are the client's, not model errors
        assert v1 is not None and (v1.requests, v1.errors, v1.client_errors) == (8, 0, 2)
        assert v1.errors_by_kind == {"invalid_input": 2, "inference": 0, "overloaded": 0}
        assert v1.backend == agent.active[0].backend
        assert v1.p50_ms is not None and v1.p95_ms is not None and v1.p99_ms is not None
        assert 0 < v1.p50_ms <= v1.p95_ms <= v1.p99_ms
        assert beat.disk is not None and beat.disk.total_bytes > 0
        scraped = httpx.get(f"{agent.local_api_url}/metrics", timeout=10)
        assert scraped.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
        [requests] = families["edgefleet_inference_requests"].samples
        assert requests.labels["version"] == "1.0.0" and requests.value == 8

        _deploy(setup, 2, "2.0.0", 3.0)
        for _ in range(3):
            agent.infer("det", X)
        heartbeats.wait(_has("2.0.0", 3), "heartbeat with det 2.0.0 figures")
        wait_until(lambda: len(heartbeats.all()) > 3 + _last_with_v1(heartbeats), 20, "more")

    beats = heartbeats.all()
    last_v1 = _last_with_v1(heartbeats)
    # 1.0.0 is reported with its final figures after the swap, then no more
    final = _figures(beats[last_v1], "1.0.0")
    assert final is not None and final.requests == 8
    assert _figures(beats[last_v1], "2.0.0") is not None
    assert all(_figures(b, "1.0.0") is None for b in beats[last_v1 + 1 :])
    v2 = _figures(beats[-1], "2.0.0")
    assert v2 is not None and (v2.requests, v2.errors) == (3, 0)


def _last_with_v1(heartbeats: Heartbeats) -> int:
    beats = heartbeats.all()
    return max(i for i, b in enumerate(beats) if _figures(b, "1.0.0") is not None)


def test_control_plane_shows_the_heartbeat_figures(
    setup: Setup, heartbeats: Heartbeats, database_url: str, tmp_path: Path
) -> None:
    app = create_app(
        settings(tmp_path / "cp", setup.kit, mqtt_url=setup.broker.url, database_url=database_url)
    )
    with serve_app(app) as url, api_client(url, timeout=10) as http:
        # enrolled with this control plane (bundles still come from the test's blob server)
        data_dir = tmp_path / "agent-data"
        created = http.post(f"/api/v1/devices/{DEVICE}/enrollment", json={"fleet": "store-eu"})
        config = setup.agent(data_dir).config.model_copy(update={"control_plane_url": url})
        enroll_device(config, created.json()["token"])
        with setup.agent(data_dir, heartbeat_interval_s=0.2) as agent:
            _deploy(setup, 1, "1.0.0", 0.5)
            _serve_some(agent)
            heartbeats.wait(_has("1.0.0", 8), "heartbeat with det 1.0.0 figures")

            def shown() -> dict[str, Any] | None:
                response = http.get(f"/api/v1/devices/{DEVICE}")
                beat = (
                    response.json().get("last_heartbeat") if response.status_code == 200 else None
                )
                models = (beat or {}).get("models") or []
                return beat if any(m["requests"] == 8 for m in models) else None

            wait_until(lambda: shown() is not None, 20, "figures in GET /api/v1/devices/{id}")
            beat = shown()
            assert beat is not None
            [figures] = beat["models"]
            assert (figures["name"], figures["version"]) == ("det", "1.0.0")
            assert (figures["errors"], figures["client_errors"]) == (0, 2)
            assert figures["errors_by_kind"] == {
                "invalid_input": 2,
                "inference": 0,
                "overloaded": 0,
            }
            assert figures["backend"] == agent.active[0].backend
            assert figures["p50_ms"] > 0 and figures["p99_ms"] >= figures["p50_ms"]
            assert beat["disk"]["total_bytes"] > 0
            assert isinstance(beat["temperatures"], list)
