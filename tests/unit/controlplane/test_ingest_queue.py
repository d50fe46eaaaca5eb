"""The MQTT bridge's ingest queue: bounded in messages and bytes, blocking paho's network
thread only briefly (``OFFER_WAIT_S``) while it is full.

``IngestQueue`` is tested on its own; the bridge is the real ``MqttBridge`` (not
started: its worker does not drain, so the queue fills) fed through the very callback
paho's network thread calls, ``client.on_message``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine

from controlplane.ingest_queue import IngestQueue
from controlplane.mqtt_bridge import OFFER_WAIT_S, MqttBridge
from protocol import MAX_REPORT_BYTES, TopicKind, device_topic, parse_broker_url
from tests.support.controlplane import signer
from tests.support.trust import TrustKit

BEAT = device_topic("d1", TopicKind.HEARTBEAT)


def test_the_queue_is_bounded_in_bytes_and_in_items() -> None:
    q: IngestQueue[str] = IngestQueue(max_items=3, max_bytes=100)
    assert q.offer("a", 60) and not q.offer("b", 41)  # 101 bytes: refused
    assert q.offer("b", 40) and q.bytes == 100 and not q.offer("c", 1)
    assert q.get(0.1) == "a" and q.bytes == 40
    assert q.offer("c", 0) and q.offer("d", 10) and not q.offer("e", 1)  # 3 items
    assert q.offer("stop", force=True) and len(q) == 4  # control items always fit
    assert [q.get(0.1) for _ in range(4)] == ["b", "c", "d", "stop"]
    assert q.bytes == 0
    with pytest.raises(queue.Empty):
        q.get(0.01)


def test_an_offer_waits_for_room_up_to_its_limit() -> None:
    q: IngestQueue[str] = IngestQueue(max_items=1, max_bytes=100)
    assert q.offer("a", 1)
    start = time.monotonic()
    assert not q.offer("b", 1, wait=0.1)  # nobody takes "a"
    assert 0.1 <= time.monotonic() - start < 1.0
    taker = threading.Timer(0.05, lambda: q.take_while(lambda _: True, 10))
    taker.start()
    assert q.offer("c", 1, wait=5.0)  # room made by the taker: taken long before 5 s
    taker.join()
    assert q.get(0.1) == "c"


def test_a_single_item_larger_than_the_queue_is_refused() -> None:
    q: IngestQueue[bytes] = IngestQueue(max_items=10, max_bytes=10)
    assert not q.offer(b"x" * 11, 11) and len(q) == 0


@pytest.fixture
def bridge(engine: Engine, trust_kit: TrustKit) -> Iterator[MqttBridge]:
    """A bridge with room for 3 reports of 100 KB (its worker is not started)."""
    yield MqttBridge(
        parse_broker_url("mqtt://127.0.0.1:9"),
        engine,
        signer(engine, trust_kit),
        client_id="test-bridge",
        queue_size=1000,
        queue_bytes=300_000,
    )


def _deliver(bridge: MqttBridge, payload: bytes, topic: str = BEAT) -> float:
    """Hand ``payload`` to the bridge as paho's network thread does; seconds it took."""
    message = mqtt.MQTTMessage(topic=topic.encode())
    message.payload = payload
    client = bridge._client
    callback = client.on_message
    assert callback is not None
    start = time.perf_counter()
    callback(client, None, message)
    return time.perf_counter() - start


def test_a_full_queue_drops_and_counts_reports_after_a_short_wait(
    bridge: MqttBridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="controlplane")
    report = b"{" + b" " * 99_998 + b"}"
    took = [_deliver(bridge, report) for _ in range(10)]
    assert bridge.dropped == 7
    assert max(took) < OFFER_WAIT_S + 0.3, took  # waits for room only briefly
    full = [r.getMessage() for r in caplog.records if "ingest queue full" in r.getMessage()]
    assert len(full) == 1, full  # one line per episode, not one per report
    assert "3 messages, 300000 bytes" in full[0]


def test_an_oversized_report_is_never_queued(bridge: MqttBridge) -> None:
    """A report over MAX_REPORT_BYTES takes no room: only its topic and size are kept,
    so 20 reports of 15 MB (seen: 127 MB -> 1.49 GB resident) cost nothing."""
    huge = b"x" * (15 * 1024 * 1024)
    for _ in range(20):
        _deliver(bridge, huge)
    assert bridge.dropped == 0 and bridge._queue.bytes == 0 and len(bridge._queue) == 20
    _deliver(bridge, b"x" * MAX_REPORT_BYTES)  # at the limit: queued as it is
    assert bridge._queue.bytes == MAX_REPORT_BYTES
