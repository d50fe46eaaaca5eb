"""The telemetry spool end to end: a real Agent, real Mosquitto processes stopped and
started again on the same port (sessions persisted, see tests.support.outage.broker_on),
a real ONNX model served the whole time, and the spool file itself inspected.

Heartbeats every 20 ms make a few seconds of outage stand for hours of a real one (at
the default 30 s interval, 300 spooled heartbeats are two and a half hours offline).
What is checked is exact: every entry the spool held arrives, in spool order; what the
bound dropped is counted (sent + dropped + still pending == everything ever appended);
and what a killed agent had spooled is sent by the next one on the same data_dir.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from agent import Agent
from protocol import DeploymentEvent, EventKind, Heartbeat, TopicKind
from tests.support.deploy import (
    Setup,
    assert_served,
    det_inputs,
    oip_infer,
    open_setup,
    ort_run,
    outputs_of,
)
from tests.support.identity import report_of
from tests.support.mosquitto import Broker
from tests.support.outage import Recorder, broker_on, stop_broker
from tests.support.ports import free_port, wait_until

pytestmark = pytest.mark.integration
SPOOLED = (TopicKind.EVENTS.value, TopicKind.HEARTBEAT.value)
BEAT_S = 0.02


class RawRecorder(Recorder):
    """The device's reports as (kind, raw payload), in arrival order."""

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seen.append((msg.topic.rsplit("/", 1)[1], bytes(msg.payload)))

    def spooled(self, mark: int = 0) -> list[bytes]:
        """Events and heartbeats since ``mark``, each payload once (first arrival)."""
        return list(dict.fromkeys(p for k, p in self.since(mark, *SPOOLED)))


def _spool_file(agent_data: Path) -> Path:
    return agent_data / "spool.sqlite"


def _rows(path: Path) -> list[tuple[str, bytes]]:
    """What the spool file holds, in seq order (read by a second SQLite connection)."""
    db = sqlite3.connect(path)
    try:
        return [
            (k, bytes(p)) for k, p in db.execute("SELECT kind, payload FROM spool ORDER BY seq")
        ]
    finally:
        db.close()


def _counters(path: Path) -> tuple[int, int]:
    """(entries ever appended, entries dropped by the bound)."""
    db = sqlite3.connect(path)
    try:
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        dropped = db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return (int(seq[0]) if seq else 0, int(dropped[0]))
    finally:
        db.close()


def _beats(payloads: list[bytes], kinds: dict[bytes, str]) -> list[Heartbeat]:
    return [report_of(Heartbeat, p) for p in payloads if kinds[p] == TopicKind.HEARTBEAT]


def _assert_run(received: list[bytes], run: list[bytes]) -> None:
    """``run`` arrived as one contiguous stretch, in this order."""
    assert run, "nothing was spooled"
    start = received.index(run[0])
    assert received[start : start + len(run)] == run


def _serve_for(agent: Agent, seconds: float, want: dict[str, np.ndarray]) -> int:
    """Inference through the in-process API and OIP REST, non-stop; requests served."""
    inputs, served = det_inputs(3), 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert_served(agent, agent.infer("det", inputs), want)
        assert_served(agent, outputs_of(oip_infer(agent, "det", inputs)), want)
        served += 2
    return served


def _on_port(port: int, tmp_path: Path, run: int) -> AbstractContextManager[Broker]:
    """Broker number ``run`` on ``port``; all of them share one persistence directory."""
    return broker_on(port, tmp_path / "mq", run)


@contextmanager
def _environment(tmp_path: Path) -> Iterator[tuple[Setup, RawRecorder, Broker, int]]:
    """A broker on a fixed port (restartable, see ``_on_port``), the usual agent set-up
    around it, and a raw recorder subscribed before any agent starts."""
    port = free_port()
    with _on_port(port, tmp_path, 0) as first:
        on_port = Broker(port=port, process=first.process, log=first.log)
        with open_setup(tmp_path, on_port) as setup:
            recorder = RawRecorder(port)
            try:
                yield setup, recorder, first, port
            finally:
                recorder.close()


def test_a_long_outage_keeps_serving_and_delivers_every_spooled_entry_in_order(
    tmp_path: Path,
) -> None:
    with _environment(tmp_path) as (setup, recorder, first, port):
        _long_outage(setup, recorder, first, port, tmp_path)


def _long_outage(s: Setup, recorder: RawRecorder, first: Broker, port: int, tmp: Path) -> None:
    v1, v2 = s.bundle("det", "1.0.0", weight=0.5), s.bundle("det", "2.0.0", weight=3.0)
    s.watcher.desire(1, s.assignment(v1))
    inputs = det_inputs(3)
    with s.agent(heartbeat_interval_s=BEAT_S, retry_backoff_s=(0.2, 0.4)) as agent:
        wait_until(lambda: EventKind.ACTIVATED in s.watcher.kinds("1.0.0"), 20, "v1 ACTIVATED")
        # v2 cannot be downloaded yet: its retries keep producing events while offline
        s.blobs.unavailable = True
        s.watcher.desire(2, s.assignment(v2, deployment_id=2))
        wait_until(lambda: EventKind.RETRYING in s.watcher.kinds("2.0.0"), 20, "v2 RETRYING")
        stop_broker(first)
        wait_until(lambda: not agent.connected, 10, "disconnect noticed")
        assert _serve_for(agent, 2.0, ort_run(v1, inputs)) > 0
        s.blobs.unavailable = False  # the retry activates v2 with the broker still away
        wait_until(lambda: [m.version for m in agent.active] == ["2.0.0"], 20, "v2 offline")
        assert _serve_for(agent, 0.5, ort_run(v2, inputs)) > 0
        spool = _spool_file(agent.config.data_dir)
        held = _rows(spool)
        assert len(held) >= 100 and not agent.connected
        assert {k for k, _ in held} == set(SPOOLED)
        with _on_port(port, tmp, 1):
            assert agent.wait_connected(40), "agent did not reconnect"
            wanted = {p for _, p in held}
            wait_until(lambda: set(recorder.spooled()) >= wanted, 30, "every spooled entry")
            assert_served(agent, agent.infer("det", inputs), ort_run(v2, inputs))
            agent.stop()  # waits for outstanding acknowledgements
            appended, dropped = _counters(spool)
            pending = {p for _, p in _rows(spool)}
            wait_until(
                lambda: len(set(recorder.spooled()) | pending) == appended,
                20,
                "everything ever spooled at the recorder (or still in the spool)",
            )
    assert dropped == 0
    received = recorder.spooled()
    _assert_run(received, [p for _, p in held])
    events = [report_of(DeploymentEvent, p) for k, p in held if k == TopicKind.EVENTS]
    assert {(e.model_version, e.kind) for e in events} >= {
        ("2.0.0", EventKind.RETRYING),
        ("2.0.0", EventKind.ACTIVATED),
    }
    assert ("2.0.0", EventKind.FAILED) not in {(e.model_version, e.kind) for e in events}
    at = [b.at for b in _beats(received, _kinds(recorder))]
    assert len(at) > len(held) // 2
    assert at == sorted(at) and len(set(at)) == len(at)  # heartbeats in order, once each


def test_a_small_bound_drops_the_oldest_and_reports_how_many(tmp_path: Path) -> None:
    with _environment(tmp_path) as (setup, recorder, first, port):
        _bounded_outage(setup, recorder, first, port, tmp_path, bound=20)


def _bounded_outage(
    s: Setup, recorder: RawRecorder, first: Broker, port: int, tmp: Path, bound: int
) -> None:
    with s.agent(heartbeat_interval_s=BEAT_S, spool_max_entries=bound) as agent:
        assert agent.wait_connected(10)
        wait_until(lambda: len(recorder.spooled()) >= 3, 10, "heartbeats while connected")
        stop_broker(first)
        wait_until(lambda: not agent.connected, 10, "disconnect noticed")
        noticed = datetime.now(UTC)  # heartbeats built from now on can only be spooled
        spool = _spool_file(agent.config.data_dir)
        wait_until(lambda: _counters(spool)[1] >= 3 * bound, 20, "the bound hit")
        assert len(_rows(spool)) == bound  # never more than the bound on disk
        with _on_port(port, tmp, 1):
            assert agent.wait_connected(40), "agent did not reconnect"
            wait_until(lambda: len(_rows(spool)) <= 1, 20, "spool drained")
            dropped = _counters(spool)[1]

            def reported() -> list[int]:
                return [b.spool_dropped for b in _beats(recorder.spooled(), _kinds(recorder))]

            wait_until(lambda: reported()[-1] == dropped, 20, "a heartbeat with the count")
            agent.stop()
            appended, dropped_at_stop = _counters(spool)
            pending = {p for _, p in _rows(spool)}
            wait_until(
                lambda: len(set(recorder.spooled()) | pending) + dropped == appended,
                20,
                "sent + dropped + pending == appended",
            )
    # (an entry dropped while in flight and then acknowledged is taken back off)
    assert dropped_at_stop == dropped >= 2 * bound
    beats = _beats(recorder.spooled(), _kinds(recorder))
    since = [b for b in beats if b.at > noticed]
    # the first heartbeats of the outage were dropped (the oldest): every one built
    # after the disconnect that arrived was built once many had been dropped already
    assert since and all(b.spool_dropped >= 2 * bound for b in since)
    assert max(b.spool_pending for b in since) <= bound


def _kinds(recorder: RawRecorder) -> dict[bytes, str]:
    return {p: k for k, p in recorder.since(0, *SPOOLED)}


_CHILD = """
import json, sys, time
from agent import Agent, config_from_mapping
agent = Agent(config_from_mapping(json.loads(sys.argv[1])), facts={"test": True})
agent.start()
while True:
    time.sleep(1)
"""


def test_what_a_killed_agent_spooled_is_sent_by_the_next_one(setup: Setup, tmp_path: Path) -> None:
    port = free_port()  # no broker there yet: every agent below starts offline
    data = tmp_path / "device"
    spool = _spool_file(data)
    # a clean stop while offline keeps the spool ...
    offline = setup.agent(data, heartbeat_interval_s=BEAT_S, broker_url=f"mqtt://127.0.0.1:{port}")
    offline.start()
    try:
        wait_until(lambda: spool.exists() and len(_rows(spool)) >= 10, 20, "spooled offline")
    finally:
        offline.stop()
    kept = _rows(spool)
    # ... and an agent process killed with SIGKILL keeps what it committed
    config = offline.config.model_dump(mode="json")
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_until(lambda: len(_rows(spool)) >= len(kept) + 20, 30, "child spooling")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        log.close()
    held = _rows(spool)
    assert held[: len(kept)] == kept  # the first agent's entries are still first
    with _on_port(port, tmp_path, 0):
        recorder = RawRecorder(port)
        try:
            with setup.agent(data, broker_url=f"mqtt://127.0.0.1:{port}") as agent:
                assert agent.wait_connected(20)
                wait_until(lambda: len(recorder.spooled()) >= len(held), 20, "the spool delivered")
                assert recorder.spooled()[: len(held)] == [p for _, p in held]
        finally:
            recorder.close()
    assert _counters(spool)[1] == 0
