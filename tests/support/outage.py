"""A broker that goes away and comes back: ``broker_on`` runs Mosquitto on a fixed port
with sessions persisted across runs, ``stop_broker`` stops one, and ``Recorder`` is a
persistent-session subscriber that keeps every report of the device, in arrival order,
across the outage."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import DeploymentEvent, StateReport, TopicKind
from tests.support.deploy import DEVICE
from tests.support.identity import report_of
from tests.support.mosquitto import Broker, run_mosquitto


@contextmanager
def broker_on(port: int, workdir: Path, run: int, *, persistence: bool = True) -> Iterator[Broker]:
    """A Mosquitto listening on ``port`` whose sessions persist in ``workdir`` across runs
    (``persistence=False``: Mosquitto's default, a restart forgets every session and
    every message it held).

    ``user root`` only matters when the tests run as root: it keeps Mosquitto from
    switching to the ``mosquitto`` user, which cannot write under the test's tmp dir.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    persist = f"persistence true\npersistence_location {workdir}/\n" if persistence else ""
    extra = (
        f"listener {port} 127.0.0.1\n{persist}"
        # the recorder may be away while a whole backlog arrives: queue it all for it
        "user root\nmax_queued_messages 0\n"
    )
    with run_mosquitto(workdir / f"run-{run}", extra_config=extra) as broker:
        yield broker


class Recorder:
    """Persistent-session subscriber: every report of the device, in arrival order."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="test-recorder", clean_session=False
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"edgefleet/v1/devices/{DEVICE}/+", qos=1)
        self.client.loop_start()  # reconnects (same session) when the broker comes back

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        if kind == TopicKind.EVENTS:
            item: Any = report_of(DeploymentEvent, msg.payload)
        elif kind == TopicKind.STATE and msg.payload:
            item = report_of(StateReport, msg.payload)
        else:
            item = msg.payload
        with self.lock:
            self.seen.append((kind, item))

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)

    def since(self, mark: int, *kinds: str) -> list[Any]:
        with self.lock:
            return [(k, v) for k, v in self.seen[mark:] if not kinds or k in kinds]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def stop_broker(broker: Broker) -> None:
    """Stop ``broker``'s Mosquitto (SIGTERM) and wait for it: the broker goes away."""
    broker.process.terminate()
    broker.process.wait(10)
