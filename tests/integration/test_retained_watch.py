"""The control plane puts back what others write on its retained topics.

On an open broker (no ACLs: here a private Mosquitto) any client can overwrite a device's
retained command or the trust document, with junk or with an empty message that erases
it. The control plane watches both and restores its own within moments, so a device
that (re)connects later still finds the right command and trust document.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from protocol import TRUST_TOPIC, TopicKind, device_topic
from tests.support.controlplane import upload_bundle
from tests.support.mqtt_plane import ControlPlane, MqttPeer
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


def _retained(port: int, topic: str, name: str) -> bytes:
    """The retained message on ``topic`` as a client connecting now receives it."""
    fresh = MqttPeer(port, name)
    try:
        fresh.subscribe(topic)
        wait_until(lambda: bool(fresh.received(topic)), 10, f"retained {topic}")
        return fresh.received(topic)[-1]
    finally:
        fresh.close()


def test_junk_and_erasures_on_our_retained_topics_are_put_back(
    cp: ControlPlane, tmp_path: Path
) -> None:
    assert upload_bundle(cp.http, cp.bundle("det", "1.0.0")).status_code == 201
    cp.report("dev-1", "lab")  # enrolled on first use, then reports
    created = cp.http.post(
        "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": "lab"}
    )
    assert created.status_code == 201, created.text
    wait_until(lambda: bool(cp.desired("dev-1")), 10, "dev-1's command")
    port = cp.mqtt.port
    command_topic = device_topic("dev-1", TopicKind.DESIRED)
    command = _retained(port, command_topic, "before-1")
    trust = _retained(port, TRUST_TOPIC, "before-2")

    rogue = MqttPeer(port, "rogue")
    try:
        rogue.publish(TRUST_TOPIC, b'{"junk": true}', retain=True)
        rogue.publish(command_topic, b"", retain=True)  # erase dev-1's command
        rogue.publish(device_topic("ghost", TopicKind.DESIRED), b"junk", retain=True)
    finally:
        rogue.close()

    wait_until(lambda: _retained(port, TRUST_TOPIC, "after-1") == trust, 10, "trust restored")
    wait_until(lambda: _retained(port, command_topic, "after-2") == command, 10, "command restored")
    wait_until(
        lambda: _nothing_retained(port, device_topic("ghost", TopicKind.DESIRED)), 10, "cleared"
    )


def _nothing_retained(port: int, topic: str) -> bool:
    """No (non-empty) retained message on ``topic`` reaches a client connecting now."""
    fresh = MqttPeer(port, "probe")
    try:
        fresh.subscribe(topic)
        time.sleep(0.5)  # a retained message arrives right after the SUBACK
        return not [p for p in fresh.received(topic) if p]
    finally:
        fresh.close()
