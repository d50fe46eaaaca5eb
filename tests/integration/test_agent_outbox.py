"""Deployment events published while the broker is away are kept in the on-disk spool
(bounded, oldest dropped and counted) and sent in order on reconnect, after the full state
report; a flush cut short by the broker going away again loses nothing and keeps the order.

Real Mosquitto processes: one is stopped and a new one started on the same port with the
same persistence file, so the test's subscriber keeps its session (and receives what the
agent sends right after it reconnects) without racing the agent to the new broker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.link.mqtt_link import MqttLink
from protocol import (
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    StateReport,
    TopicKind,
    parse_broker_url,
)
from tests.support.deploy import Setup, open_setup
from tests.support.mosquitto import Broker
from tests.support.outage import Recorder, broker_on, stop_broker
from tests.support.ports import free_port, wait_until

pytestmark = pytest.mark.integration
DEVICE = "store-eu-001"


def test_events_sent_while_broker_is_down_arrive_after_the_state_report(
    tmp_path: Path,
) -> None:
    port = free_port()
    with broker_on(port, tmp_path / "mq", 0) as first:
        # the agent and the watcher use the fixed port, which the next broker reuses
        on_port = Broker(port=port, process=first.process, log=first.log)
        with open_setup(tmp_path, on_port) as setup:
            recorder = Recorder(port)
            try:
                _deploy_while_offline(setup, recorder, first, port, tmp_path)
            finally:
                recorder.close()


def _deploy_while_offline(
    setup: Setup, recorder: Recorder, first: Broker, port: int, tmp_path: Path
) -> None:
    a1 = setup.assignment(setup.bundle("det", "1.0.0"))
    setup.blobs.unavailable = True  # the first attempt fails, the retry comes later
    setup.watcher.desire(1, a1)
    with setup.agent(retry_backoff_s=(0.2, 0.4)) as agent:
        wait_until(lambda: agent.last_error is not None, 20, "transient failure")
        stopped_at = datetime.now(UTC)
        stop_broker(first)
        wait_until(lambda: not agent.connected, 10, "disconnect noticed")
        setup.blobs.unavailable = False  # the retry activates while the broker is away
        wait_until(lambda: agent.status == DeviceStatus.ACTIVE, 20, "ACTIVE while offline")
        mark = recorder.mark()
        with broker_on(port, tmp_path / "mq", 1):
            assert agent.wait_connected(40), "agent did not reconnect"
            wait_until(
                lambda: any(
                    e.kind == EventKind.ACTIVATED for _, e in recorder.since(mark, "events")
                ),
                20,
                "ACTIVATED event delivered after reconnect",
            )
            after = recorder.since(mark, "state", "events")
            # the events made while the broker was away; one made before it stopped may
            # still have been in flight then, and paho resends that one by itself at the
            # reconnect, ahead of the agent's state report (mqtt_link: NO_CONN)
            first_event = next(
                i for i, (k, e) in enumerate(after) if k == "events" and e.at >= stopped_at
            )
            states_before = [v for k, v in after[:first_event] if k == "state"]
            assert states_before, f"no state report before the queued events: {after}"
            assert states_before[-1].status == DeviceStatus.ACTIVE
            # every event of the deployment, from the first: the broker may stop between a
            # failed attempt's RECEIVED (delivered) and its RETRYING (queued, sent after the
            # reconnect); a QoS 1 message whose ack the stop cut off may come twice
            events = [v for _, v in recorder.since(0, "events")]
            kinds = [kind for kind, _ in dict.fromkeys((e.kind, e.at) for e in events)]
            # retries that still failed (blob server down) come first, each RECEIVED +
            # RETRYING; then the attempt that succeeded, complete
            succeeded = [EventKind.RECEIVED, EventKind.DOWNLOADED, EventKind.VERIFIED]
            assert kinds[-4:] == [*succeeded, EventKind.ACTIVATED], kinds
            failed_attempts = kinds[:-4]
            assert failed_attempts, kinds  # the transient failure the test began with
            assert failed_attempts == [EventKind.RECEIVED, EventKind.RETRYING] * (
                len(failed_attempts) // 2
            ), kinds


def test_outbox_is_bounded_and_drops_the_oldest(tmp_path: Path) -> None:
    port = free_port()
    connected = threading.Event()

    def on_connected() -> None:  # what the agent does: the full state report first
        link.publish(TopicKind.STATE, _report(), qos=1, retain=True)
        connected.set()

    link = MqttLink(
        device_id=DEVICE,
        broker=parse_broker_url(f"mqtt://127.0.0.1:{port}"),
        on_desired=lambda desired: None,
        on_connected=on_connected,
        spool_path=tmp_path / "spool.sqlite",
        spool_max_entries=3,
    )
    for generation in range(1, 6):  # nothing listens yet: all five are queued
        link.publish(TopicKind.EVENTS, _event(generation), qos=1)
    link.publish(TopicKind.HEARTBEAT, _report(), qos=0)  # QoS 0: dropped, not queued
    assert link.outbox_length == 3 and link.outbox_dropped == 2
    with broker_on(port, tmp_path / "mq", 0):
        recorder = Recorder(port)
        try:
            link.start()
            assert connected.wait(20)
            wait_until(lambda: len(recorder.since(0, "events")) == 3, 10, "three events")
            seen = [k for k, _ in recorder.since(0, "state", "events")]
            assert seen == ["state", "events", "events", "events"]
            assert [v.generation for _, v in recorder.since(0, "events")] == [3, 4, 5]
            # removed from the spool once the broker acknowledged them
            wait_until(lambda: link.outbox_length == 0, 10, "spool drained")
            assert link.outbox_dropped == 2
            # connected and drained: the next event goes straight out
            link.publish(TopicKind.EVENTS, _event(6), qos=1)
            wait_until(lambda: len(recorder.since(0, "events")) == 4, 10, "direct event")
        finally:
            link.stop()
            recorder.close()


def test_a_flush_cut_short_by_the_broker_going_away_loses_nothing(tmp_path: Path) -> None:
    """A big backlog starts draining; the broker dies mid-flush and comes back: every
    event arrives, first occurrences in spool order (QoS 1: a few may arrive twice)."""
    port = free_port()
    total = 5_000
    link = MqttLink(
        device_id=DEVICE,
        broker=parse_broker_url(f"mqtt://127.0.0.1:{port}"),
        on_desired=lambda desired: None,
        on_connected=lambda: None,
        spool_path=tmp_path / "spool.sqlite",
        spool_max_entries=total,
    )
    for generation in range(1, total + 1):
        link.publish(TopicKind.EVENTS, _event(generation), qos=1)
    assert link.outbox_length == total and link.outbox_dropped == 0
    recorder: Recorder | None = None
    try:
        with broker_on(port, tmp_path / "mq", 0) as first:
            recorder = Recorder(port)
            link.start()
            wait_until(lambda: len(recorder.since(0, "events")) > 0, 20, "flush started")
            stop_broker(first)
        left = link.outbox_length
        assert 0 < left < total, f"the flush was not cut short: {left} left"
        with broker_on(port, tmp_path / "mq", 1):
            wait_until(lambda: link.outbox_length == 0, 60, "spool drained after reconnect")
            wait_until(
                lambda: len({v.generation for _, v in recorder.since(0, "events")}) == total,
                60,
                "every event at the recorder",
            )
    finally:
        link.stop()
        if recorder is not None:
            recorder.close()
    got = [v.generation for _, v in recorder.since(0, "events")]
    first_seen = list(dict.fromkeys(got))
    assert first_seen == list(range(1, total + 1))
    assert link.connections == 2


def _event(generation: int) -> DeploymentEvent:
    return DeploymentEvent(
        device_id=DEVICE,
        deployment_id=1,
        generation=generation,
        model_name="det",
        model_version="1.0.0",
        kind=EventKind.FAILED,
        reason="test",
    )


def _report() -> StateReport:
    return StateReport(
        device_id=DEVICE,
        fleet="store-eu",
        agent_version="0",
        status=DeviceStatus.IDLE,
        generation=0,
    )
