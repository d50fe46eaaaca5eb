"""``agent.link.network_loop``: one thread runs callbacks, timers and blocking work for
many devices; a failing callback is logged and the loop goes on. And the MQTT link's
connection failures, threaded or driven by the loop, say why (a closed loopback port:
no broker needed)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.link.mqtt_link import MqttLink
from agent.link.network_loop import NetworkLoop
from protocol import parse_broker_url


@pytest.fixture
def loop() -> Iterator[NetworkLoop]:
    network = NetworkLoop(name="test-net", workers=2)
    network.start()
    yield network
    network.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_calls_run_on_the_loop_thread(loop: NetworkLoop) -> None:
    assert not loop.in_loop()
    assert loop.call(loop.in_loop) is True
    names = []
    done = threading.Event()
    loop.call_soon(lambda: names.append(threading.current_thread().name))
    loop.call_later(0.05, done.set)
    assert done.wait(5)
    assert names == ["test-net"]
    worker = loop.submit(lambda: threading.current_thread().name).result(5)
    assert worker.startswith("test-net-work")


def test_a_failing_callback_is_logged_and_the_loop_goes_on(
    loop: NetworkLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("device bug")

    with caplog.at_level(logging.WARNING, logger="agent.link.network_loop"):
        loop.call_soon(boom)
        assert loop.call(lambda: 42) == 42
    assert "RuntimeError: device bug" in caplog.text


def test_call_hands_back_the_exception(loop: NetworkLoop) -> None:
    def fails() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        loop.call(fails)


def _failed_attempts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot reach broker" in r.getMessage()]


@pytest.mark.parametrize("driven", [False, True], ids=["own-thread", "network-loop"])
def test_a_device_that_cannot_connect_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, driven: bool
) -> None:
    port = _closed_port()
    network = NetworkLoop(name="test-net") if driven else None
    if network is not None:
        network.start()
    link = MqttLink(
        device_id="d1",
        broker=parse_broker_url(f"mqtt://127.0.0.1:{port}"),
        on_desired=lambda envelope: None,
        on_connected=lambda: None,
        spool_path=tmp_path / "spool.sqlite",
        network=network,
    )
    try:
        with caplog.at_level(logging.INFO, logger="agent.link.mqtt_link"):
            link.start()
            deadline = time.monotonic() + 10
            while len(_failed_attempts(caplog)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        link.stop()
        if network is not None:
            network.stop()
    first, second = _failed_attempts(caplog)[:2]
    assert f"d1: cannot reach broker mqtt://127.0.0.1:{port} (attempt 1): " in first
    assert "ConnectionRefusedError" in first and "retrying in" in first
    assert "(attempt 2)" in second  # and it keeps trying
    assert not link.connected
