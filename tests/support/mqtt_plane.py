"""The control plane served with its real MQTT bridge, as the API tests see it: an HTTP
client and ``MqttPeer``, a paho client of the test's own that plays devices and records
the commands published to them (``ControlPlane``; the ``cp`` fixture of
``tests/integration/conftest.py`` serves one)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import DesiredState, DeviceStatus, StateReport, TopicKind, device_topic, encode
from tests.support.controlplane import SignedBundle, open_command, signed_bundle
from tests.support.identity import DeviceKeys, api_enroller
from tests.support.trust import TrustKit


class MqttPeer:
    """A paho client of the test's own: records what it receives, publishes messages."""

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.messages: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda *_a: self._connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(10), "test MQTT client could not connect"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.setdefault(msg.topic, []).append(bytes(msg.payload))

    def subscribe(self, topic_filter: str) -> None:
        self.client.subscribe(topic_filter, qos=1)

    def received(self, topic: str) -> list[bytes]:
        with self._lock:
            return list(self.messages.get(topic, []))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ControlPlane:
    """A served control plane as a test sees it: its HTTP API and an MQTT peer."""

    http: httpx.Client
    mqtt: MqttPeer
    workdir: Path
    kit: TrustKit
    #: the devices this test plays: enrolled through the API, reports sealed
    devices: DeviceKeys = field(init=False)

    def __post_init__(self) -> None:
        self.devices = DeviceKeys(api_enroller(self.http))

    def send(self, device_id: str, kind: TopicKind, payload: bytes, *, retain: bool) -> None:
        """Publish a device's report, sealed by its enrolled key (enrolled on first use)."""
        topic = device_topic(device_id, kind)
        self.mqtt.publish(topic, self.devices.seal(topic, payload), retain=retain)

    def bundle(
        self, name: str, version: str, *, scale: float = 2.0, key: Any = None
    ) -> SignedBundle:
        return signed_bundle(
            self.workdir,
            name=name,
            version=version,
            private_key=key or self.kit.release_key,
            scale=scale,
        )

    def report(self, device_id: str, fleet: str, *, generation: int = 0) -> None:
        report = StateReport(
            device_id=device_id,
            fleet=fleet,
            agent_version="test",
            status=DeviceStatus.IDLE,
            generation=generation,
            hardware={"cpu": "test"},
            local_api="127.0.0.1:8500",
        )
        self.send(device_id, TopicKind.STATE, encode(report), retain=True)

    def device(self, device_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/api/v1/devices/{device_id}")
        return response.json() if response.status_code == 200 else None

    def desired(self, device_id: str) -> list[DesiredState]:
        """Every command received for ``device_id``, verified with the control-plane key."""
        topic = device_topic(device_id, TopicKind.DESIRED)
        return [open_command(p, self.kit) for p in self.mqtt.received(topic)]
