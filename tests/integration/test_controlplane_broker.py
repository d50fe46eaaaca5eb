"""The embedded amqtt broker: retained QoS 1 messages and wills (LWT), with paho clients."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controlplane.broker import EmbeddedBroker
from controlplane.errors import ConfigError
from tests.support.ports import free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker("127.0.0.1", free_port()) as running:
        yield running


def _client(port: int, client_id: str, *, will: tuple[str, bytes] | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", port, keepalive=5)
    client.loop_start()
    assert connected.wait(10)
    return client


def _collector(client: mqtt.Client) -> list[tuple[str, bytes, int, bool]]:
    got: list[tuple[str, bytes, int, bool]] = []

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    client.on_message = on_message
    return got


def test_retained_qos1_message_reaches_a_later_subscriber(broker: EmbeddedBroker) -> None:
    publisher = _client(broker.port, "publisher")
    publisher.publish(
        "edgefleet/v1/devices/d1/desired", b"generation-1", qos=1, retain=True
    ).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()

    subscriber = _client(broker.port, "subscriber")
    got = _collector(subscriber)
    subscriber.subscribe("edgefleet/v1/devices/+/desired", qos=1)
    try:
        wait_until(lambda: bool(got), 10, "retained message")
        assert got[0] == ("edgefleet/v1/devices/d1/desired", b"generation-1", 1, True)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


def test_will_is_published_when_a_client_vanishes(broker: EmbeddedBroker) -> None:
    topic = "edgefleet/v1/devices/d2/availability"
    watcher = _client(broker.port, "watcher")
    got = _collector(watcher)
    watcher.subscribe(topic, qos=1)
    device = _client(broker.port, "d2", will=(topic, b'{"online": false}'))
    device.publish(topic, b'{"online": true}', qos=1, retain=True).wait_for_publish(5)
    wait_until(lambda: any(p == b'{"online": true}' for _, p, _, _ in got), 10, "online")
    device.loop_stop()
    sock = device.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)  # vanish without DISCONNECT
    sock.close()
    try:
        wait_until(lambda: any(p == b'{"online": false}' for _, p, _, _ in got), 10, "LWT")
        late = _client(broker.port, "late")
        late_got = _collector(late)
        late.subscribe(topic, qos=1)
        wait_until(lambda: bool(late_got), 10, "retained LWT")
        assert late_got[-1][1] == b'{"online": false}'
        late.disconnect()
        late.loop_stop()
    finally:
        watcher.disconnect()
        watcher.loop_stop()


def test_port_in_use_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            EmbeddedBroker("127.0.0.1", port).start()
