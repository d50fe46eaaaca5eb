"""The bridge republishes from the database: what was published while the broker was away
arrives, byte-identical after every reconnect, with the trust document alongside."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controlplane.app import create_app
from protocol import (
    TRUST_TOPIC,
    DeviceStatus,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import (
    api_client,
    open_command,
    serve_app,
    settings,
    signed_bundle,
    upload_bundle,
)
from tests.support.identity import DeviceKeys, api_enroller
from tests.support.mosquitto import mosquitto_binary
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


@contextmanager
def mosquitto_on(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Mosquitto on a given port (so it can be restarted where clients expect it)."""
    binary = mosquitto_binary()
    assert binary is not None, "mosquitto is not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _retained(port: int, topics: list[str], timeout: float = 15) -> dict[str, bytes]:
    """The retained message of each topic, as an agent connecting now receives it."""
    got: dict[str, bytes] = {}
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="agent-probe", protocol=mqtt.MQTTv311
    )

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got[msg.topic] = bytes(msg.payload)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    for topic in topics:
        client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        wait_until(lambda: set(got) == set(topics), timeout, f"retained {topics}")
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def test_desired_state_published_while_broker_down_arrives_after_reconnect(
    tmp_path: Path, trust_kit: TrustKit
) -> None:
    port = free_port()
    app = create_app(settings(tmp_path, trust_kit, mqtt_url=f"mqtt://127.0.0.1:{port}"))
    with serve_app(app) as url, api_client(url, timeout=10) as http:
        connected = lambda: bool(http.get("/api/v1/status").json()["connected"])  # noqa: E731
        with mosquitto_on(port, tmp_path / "broker-1"):
            wait_until(connected, 15, "bridge connected")
            report = StateReport(
                device_id="dev-1",
                fleet="f",
                agent_version="t",
                status=DeviceStatus.IDLE,
                generation=0,
            )
            done = threading.Event()
            agent = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id="dev-1", protocol=mqtt.MQTTv311
            )
            agent.on_connect = lambda *_a: done.set()
            agent.connect("127.0.0.1", port)
            agent.loop_start()
            assert done.wait(10)
            topic = device_topic("dev-1", TopicKind.STATE)
            sealed = DeviceKeys(api_enroller(http)).seal(topic, encode(report))
            agent.publish(topic, sealed, qos=1).wait_for_publish(5)
            agent.disconnect()
            agent.loop_stop()
            wait_until(
                lambda: bool(http.get("/api/v1/devices/dev-1").json().get("last_report_at")),
                10,
                "dev-1's report",
            )
        wait_until(lambda: not connected(), 10, "bridge notices the broker is gone")

        bundle = signed_bundle(
            tmp_path, name="det", version="1.0.0", private_key=trust_kit.release_key
        )
        assert upload_bundle(http, bundle).status_code == 201
        deployment = http.post(
            "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": "f"}
        )
        assert deployment.status_code == 201 and deployment.json()["targets"] == ["dev-1"]

        desired = device_topic("dev-1", TopicKind.DESIRED)
        with mosquitto_on(port, tmp_path / "broker-2"):  # a fresh broker: no retained state
            wait_until(connected, 40, "bridge reconnected")
            first = _retained(port, [desired, TRUST_TOPIC])
            state = open_command(first[desired], trust_kit)
            assert state.generation == 1 and state.device_id == "dev-1"
            assert state.models[0].deployment_id == deployment.json()["id"]
            assert first[TRUST_TOPIC] == trust_kit.trust_file.read_bytes()
        wait_until(lambda: not connected(), 10, "bridge notices the broker is gone again")

        with mosquitto_on(port, tmp_path / "broker-3"):
            wait_until(connected, 40, "bridge reconnected again")
            again = _retained(port, [desired, TRUST_TOPIC])
        # the same signed command, byte for byte: an agent sees nothing new
        assert again == first
