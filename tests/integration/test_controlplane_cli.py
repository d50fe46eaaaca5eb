"""``python -m controlplane.cli`` as a real process: serving, bad configuration, broker down."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from model_store import write_keypair
from tests.support.controlplane import run_controlplane
from tests.support.mosquitto import Broker
from tests.support.ports import free_port, wait_until

pytestmark = pytest.mark.integration


def _run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "controlplane.cli", "--data-dir", str(tmp_path / "data"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _assert_config_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], result.stderr


def test_serves_api_and_docs(tmp_path: Path, mosquitto: Broker) -> None:
    _, pub = write_keypair(tmp_path / "keys")
    with run_controlplane(tmp_path, mqtt_url=mosquitto.url, trusted_keys=[pub]) as cp:
        assert httpx.get(f"{cp.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{cp.url}/docs").status_code == 200
        assert "/api/v1/deployments" in httpx.get(f"{cp.url}/openapi.json").json()["paths"]
        wait_until(
            lambda: httpx.get(f"{cp.url}/api/v1/status").json()["connected"], 10, "MQTT connected"
        )
    assert (cp.data_dir / "edgefleet.db").is_file()


def test_unreadable_trusted_key_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _run_cli(
        "--port", str(free_port()), "--trusted-keys", "/nonexistent/release.pub", tmp_path=tmp_path
    )
    _assert_config_error(result, "trusted")


def test_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run_cli("--port", str(taken.getsockname()[1]), tmp_path=tmp_path)
    _assert_config_error(result, "cannot listen")


def test_unreachable_database_is_one_line_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/edgefleet"
    result = _run_cli("--port", str(free_port()), "--database-url", url, tmp_path=tmp_path)
    _assert_config_error(result, "cannot use database")
    assert "secret" not in result.stderr


def test_api_serves_while_broker_is_down(tmp_path: Path) -> None:
    _, pub = write_keypair(tmp_path / "keys")
    dead = f"mqtt://user:hunter2@127.0.0.1:{free_port()}"
    with run_controlplane(tmp_path, mqtt_url=dead, trusted_keys=[pub]) as cp:
        assert httpx.get(f"{cp.url}/api/v1/devices").json() == []
        assert httpx.get(f"{cp.url}/api/v1/status").json()["connected"] is False
        wait_until(lambda: "cannot reach MQTT broker" in cp.log.read_text(), 10, "retry log line")
    assert "hunter2" not in cp.log.read_text()


def test_embedded_broker(tmp_path: Path) -> None:
    _, pub = write_keypair(tmp_path / "keys")
    extra = ["--embedded-broker", "--broker-port", str(free_port())]
    with run_controlplane(
        tmp_path, mqtt_url="mqtt://unused:1", trusted_keys=[pub], extra_args=extra
    ) as cp:
        wait_until(
            lambda: httpx.get(f"{cp.url}/api/v1/status").json()["connected"], 10, "embedded broker"
        )
