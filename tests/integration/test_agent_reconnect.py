"""MQTT resilience: a broker that is down at start is retried with backoff; after the broker
comes back the agent re-subscribes, re-reads its desired state and reports its full state.
And the MQTT credentials: the broker URL's username (else the device id) and password."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from agent import Agent, config_from_mapping
from protocol import DeviceStatus
from tests.support.deploy import Watcher
from tests.support.mosquitto import run_mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.trust import make_trust_kit

pytestmark = pytest.mark.integration


def test_broker_down_at_start_then_restarted(tmp_path: Path) -> None:
    kit = make_trust_kit(tmp_path / "trust")
    port = free_port()
    config = config_from_mapping(
        {
            "device_id": "edge-1",
            "fleet": "lab",
            "broker_url": f"mqtt://127.0.0.1:{port}",
            "control_plane_url": "http://127.0.0.1:9",
            "data_dir": str(tmp_path / "data"),
            "root_keys": [str(kit.root_pub)],
            "trust": str(kit.trust_file),
            "local_api": "127.0.0.1:0",
        }
    )
    extra = f"listener {port} 127.0.0.1\n"
    with Agent(config, facts={}) as agent:
        time.sleep(1.5)
        assert not agent.connected  # nothing listens yet; start() did not fail
        for round_ in range(2):
            with run_mosquitto(tmp_path / f"broker-{round_}", extra_config=extra) as broker:
                _check_connected_round(agent, Watcher(broker), expected_malformed=round_ + 1)
            wait_until(lambda: not agent.connected, 10, "disconnect noticed")


def _check_connected_round(agent: Agent, watcher: Watcher, *, expected_malformed: int) -> None:
    try:
        assert agent.wait_connected(40), "agent did not (re)connect"
        wait_until(lambda: watcher.last_state() is not None, 10, "full state report")
        state = watcher.last_state()
        assert state is not None and state.device_id == "edge-1"
        assert state.status == DeviceStatus.IDLE
        wait_until(lambda: watcher.availability[-1:] == [True], 10, "online")
        # the desired topic is subscribed again: a bad retained payload is seen and counted
        watcher.raw(b"[]", device="edge-1", retain=True)
        wait_until(lambda: agent.malformed_messages == expected_malformed, 10, "subscribed")
    finally:
        watcher.close()


def _agent(tmp_path: Path, device_id: str, broker_url: str) -> Agent:
    kit = make_trust_kit(tmp_path / f"trust-{device_id}")
    config = config_from_mapping(
        {
            "device_id": device_id,
            "fleet": "lab",
            "broker_url": broker_url,
            "control_plane_url": "http://127.0.0.1:9",
            "data_dir": str(tmp_path / device_id),
            "root_keys": [str(kit.root_pub)],
            "trust": str(kit.trust_file),
            "local_api": "127.0.0.1:0",
        }
    )
    return Agent(config, facts={})


def test_broker_username_comes_from_the_url_else_the_device_id(tmp_path: Path) -> None:
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    passwd = tmp_path / "passwd"
    subprocess.run([passwd_tool, "-b", "-c", str(passwd), "gateway-7", "p@ss:w/rd"], check=True)
    subprocess.run([passwd_tool, "-b", str(passwd), "edge-2", "s3cret"], check=True)
    # "user root" matters only when the tests run as root: Mosquitto would otherwise switch
    # to the mosquitto user, which cannot read the password file under the test's tmp dir
    extra = f"allow_anonymous false\npassword_file {passwd}\nuser root\n"
    with run_mosquitto(tmp_path / "mq", extra_config=extra) as broker:
        host = f"127.0.0.1:{broker.port}"
        named = _agent(tmp_path, "edge-1", f"mqtt://gateway-7:{quote('p@ss:w/rd', safe='')}@{host}")
        unnamed = _agent(tmp_path, "edge-2", f"mqtt://:s3cret@{host}")  # username = device id
        wrong = _agent(tmp_path, "edge-3", f"mqtt://:s3cret@{host}")  # edge-3 has no account
        with named, unnamed, wrong:
            assert named.wait_connected(10), "URL username + percent-decoded password refused"
            assert unnamed.wait_connected(10), "device id as username refused"
            time.sleep(1.0)
            assert not wrong.connected  # the broker really checks the credentials
        log = broker.log.read_text()
        assert "u'gateway-7'" in log and "u'edge-2'" in log
