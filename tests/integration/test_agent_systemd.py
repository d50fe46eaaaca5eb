"""The agent under a stand-in for systemd: the real ``edge-agent run --config agent.toml``
as a subprocess, ``$NOTIFY_SOCKET`` bound by the test (``tests.support.sdnotify``) and
``$WATCHDOG_USEC`` set, a real Mosquitto, blob server, signed bundle and command.

It must say READY=1 once it serves (also with no broker at all), ping the watchdog from
its own pid (what ``NotifyAccess=main`` accepts), and on SIGTERM: say STOPPING=1, stop
accepting connections, answer a request that was in flight in full, leave the retained
availability offline and exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import onnxruntime as ort
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.cli import agent_checks, agent_status
from model_store import build_bundle, load_private_key, sign_bundle
from protocol import Availability, EventKind, TopicKind, device_topic
from tests.support.deploy import DEVICE, Setup, assert_close_to_reference
from tests.support.identity import report_of
from tests.support.onnx_models import slow_model
from tests.support.ports import free_port, wait_until
from tests.support.raw_http import oip_request, read_until_closed, refused
from tests.support.sdnotify import Message, NotifyListener

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s
BATCH = 512  # ~0.4 s per request on a fast x86 core pair; warm-up (batch 1) takes ~2 ms


def _write_config(setup: Setup, *, broker_url: str | None = None) -> Path:
    config = setup.tmp / "agent.toml"
    lines = {
        "device_id": DEVICE,
        "fleet": "store-eu",
        "broker_url": broker_url or setup.broker.url,
        "control_plane_url": setup.blobs.url,
        "data_dir": str(setup.tmp / "agent-data"),
        "root_keys": [str(setup.kit.root_pub)],
        "trust": str(setup.kit.trust_file),
        "local_api": "127.0.0.1:0",
        "heartbeat_interval_s": 0.5,
    }
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in lines.items()))
    return config


@contextmanager
def _agent_process(config: Path, notify: NotifyListener) -> Iterator[subprocess.Popen[bytes]]:
    """``edge-agent run`` with NOTIFY_SOCKET / WATCHDOG_USEC; stderr in a file next to it."""
    exe = Path(sys.executable).with_name("edge-agent")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "agent.cli"]
    env = dict(os.environ, NOTIFY_SOCKET=notify.address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    log = config.with_name("agent.log")
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*argv, "run", "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
    assert "Traceback" not in log.read_text(), log.read_text()


def _status(notify: NotifyListener, contains: str, timeout: float) -> str:
    """Receive until a STATUS= line contains ``contains``; return that line."""
    deadline = time.monotonic() + timeout
    for seen in notify.received:
        if contains in (seen.get("STATUS") or ""):
            return seen.get("STATUS") or ""
    while (left := deadline - time.monotonic()) > 0:
        message = notify.recv(left)
        if message is not None and contains in (message.get("STATUS") or ""):
            return message.get("STATUS") or ""
    raise TimeoutError(f"no STATUS= with {contains!r}; got {[m.lines for m in notify.received]}")


def _retained_availability(setup: Setup) -> bool | None:
    """What a client subscribing now is told: the retained Availability's ``online``."""
    got: list[bool] = []
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            got.append(report_of(Availability, msg.payload).online)
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-availability")
    client.on_message = on_message
    client.connect("127.0.0.1", setup.broker.port)
    client.subscribe(device_topic(DEVICE, TopicKind.AVAILABILITY), qos=1)
    client.loop_start()
    try:
        done.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0] if got else None


def _from_agent(messages: list[Message], pid: int) -> None:
    assert messages and {m.pid for m in messages} == {pid}, [(m.lines, m.pid) for m in messages]


def _serving(setup: Setup) -> bool:
    state = setup.watcher.last_state()
    return state is not None and [m.version for m in state.active] == ["1.0.0"]


def test_ready_watchdog_and_sigterm_drain(setup: Setup) -> None:
    src = slow_model(setup.tmp / "src-slow" / "model.onnx")
    bundle = setup.tmp / "bundles" / "slow-1.0.0"
    build_bundle(src, bundle, name="slow", version="1.0.0")
    sign_bundle(bundle, load_private_key(setup.kit.release_key))
    setup.watcher.desire(1, setup.assignment(bundle))
    inputs = np.random.default_rng(3).standard_normal((BATCH, 8)).astype(np.float32)
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(["y"], {"x": inputs})[0]

    with (
        NotifyListener(setup.tmp / "notify") as notify,
        _agent_process(_write_config(setup), notify) as proc,
    ):
        ready = notify.wait_for("READY=1", 90)
        assert "API http://127.0.0.1:" in (ready.get("STATUS") or "")
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 60, "ACTIVATED")
        wait_until(lambda: _serving(setup), 30, "a state report with the model active")
        state = setup.watcher.last_state()
        assert state is not None and state.local_api is not None
        # measured selection picks the backend (any candidate may win): STATUS names it
        backend = state.active[0].backend
        status = _status(notify, f"serving slow 1.0.0 ({backend})", 30)
        assert f"API {state.local_api}" in status and "broker connected" in status
        notify.wait_for("WATCHDOG=1", 10)
        notify.wait_for("WATCHDOG=1", 10)
        _from_agent(notify.received, proc.pid)  # what NotifyAccess=main accepts

        # a request in flight: headers and most of the body sent, the rest held back
        url = urlsplit(state.local_api)
        host, port = url.hostname or "127.0.0.1", url.port or 0
        request = oip_request(host, port, "slow", {"x": inputs})
        with socket.create_connection((host, port), timeout=10) as client:
            client.sendall(request[:-16])
            time.sleep(0.3)  # let the server read the request line and headers
            proc.send_signal(signal.SIGTERM)
            notify.wait_for("STOPPING=1", 20)
            wait_until(lambda: refused(host, port), 20, "the API to stop accepting")
            assert proc.poll() is None  # still draining: our request is not answered yet
            client.sendall(request[-16:])
            code, body = read_until_closed(client)
        assert code == 200, body
        outputs = body["outputs"]
        assert isinstance(outputs, list) and outputs[0]["shape"] == [BATCH, 4]
        got = np.asarray(outputs[0]["data"], dtype=np.float32).reshape(BATCH, 4)
        assert_close_to_reference({"y": got}, {"y": expected}, backend, rtol=1e-4)
        assert proc.wait(60) == 0
        _from_agent(notify.received, proc.pid)
    assert _retained_availability(setup) is False


def test_an_offline_box_still_becomes_ready_and_stops_cleanly(setup: Setup) -> None:
    nobody = f"mqtt://127.0.0.1:{free_port()}"  # no broker listens there
    with (
        NotifyListener(setup.tmp / "notify") as notify,
        _agent_process(_write_config(setup, broker_url=nobody), notify) as proc,
    ):
        ready = notify.wait_for("READY=1", 90)
        assert "no model active" in (ready.get("STATUS") or "")
        assert "broker not connected" in (ready.get("STATUS") or "")
        notify.wait_for("WATCHDOG=1", 10)
        notify.wait_for("WATCHDOG=1", 10)
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", 20)
        assert proc.wait(60) == 0
        _from_agent(notify.received, proc.pid)


def test_health_checks_pass_while_the_agent_runs_and_fail_once_it_has_stopped(
    setup: Setup,
) -> None:
    agent = setup.agent()
    checks = agent_checks(agent, probe_timeout_s=2.0)
    agent.start()
    try:
        assert [check() for check in checks] == [None, None]
        assert agent_status(agent).startswith("no model active; API http://127.0.0.1:")
    finally:
        agent.stop()
    worker, local_api = (check() for check in checks)
    assert worker == "the deployment worker thread has stopped"
    assert local_api is not None and local_api.startswith("local API http://127.0.0.1:")
