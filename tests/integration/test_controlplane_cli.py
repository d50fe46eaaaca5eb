"""``python -m controlplane.cli`` as a real process: serving, bad configuration, broker down."""

from __future__ import annotations

import os
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


def _run_cli(
    *args: str, tmp_path: Path, data_dir: str | None = None
) -> subprocess.CompletedProcess[str]:
    data = data_dir or str(tmp_path / "data")
    cmd = [sys.executable, "-m", "controlplane.cli", "--data-dir", data, *args]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MQTT_URL")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env=env)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    """Exit 2 and exactly one stderr line: ``edgefleet-controlplane: error: ...``."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgefleet-controlplane: error: ") and words in lines[0], lines


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
    _assert_one_line_error(result, "trusted")


def test_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run_cli("--port", str(taken.getsockname()[1]), tmp_path=tmp_path)
    _assert_one_line_error(result, "cannot listen")


def test_unreachable_database_is_one_line_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/edgefleet"
    result = _run_cli("--port", str(free_port()), "--database-url", url, tmp_path=tmp_path)
    _assert_one_line_error(result, "cannot use database")
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


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "70000"], "argument --port: port 70000 is outside 0..65535"),
        (["--port", "-1"], "argument --port: port -1 is outside 0..65535"),
        (["--port", "http"], "argument --port: 'http' is not a port number"),
        (["--broker-port", "65536"], "argument --broker-port: port 65536 is outside"),
        (["--log-level", "loud"], "argument --log-level: invalid choice"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_one_line_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    _assert_one_line_error(_run_cli(*args, tmp_path=tmp_path), words)


def test_data_dir_that_cannot_be_created_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _run_cli("--port", str(free_port()), tmp_path=tmp_path, data_dir="/proc/cpx")
    _assert_one_line_error(result, "/proc/cpx")
    assert not (tmp_path / "data").exists()


def test_blob_dir_that_cannot_be_created_is_one_line_exit_2(tmp_path: Path) -> None:
    """With PostgreSQL the data directory holds only blobs; it is still checked at start."""
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    result = _run_cli(
        "--port", str(free_port()), "--database-url", url, tmp_path=tmp_path, data_dir="/proc/cpx"
    )
    _assert_one_line_error(result, "cannot use blob directory /proc/cpx/blobs")


def test_data_dir_that_is_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = _run_cli(
        "--port", str(free_port()), tmp_path=tmp_path, data_dir=str(tmp_path / "file")
    )
    _assert_one_line_error(result, "Not a directory")


def test_sqlite_file_in_a_directory_that_cannot_be_created_is_one_line_exit_2(
    tmp_path: Path,
) -> None:
    url = "sqlite:////proc/cpx/edgefleet.db"
    result = _run_cli("--port", str(free_port()), "--database-url", url, tmp_path=tmp_path)
    _assert_one_line_error(result, "cannot create database directory /proc/cpx")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root:secret@127.0.0.1/edgefleet", "unsupported DATABASE_URL scheme 'mysql'"),
        ("http://127.0.0.1/edgefleet", "unsupported DATABASE_URL scheme 'http'"),
        ("not a url", "invalid DATABASE_URL"),
    ],
)
def test_bad_database_url_is_one_line_exit_2(tmp_path: Path, url: str, words: str) -> None:
    result = _run_cli("--port", str(free_port()), "--database-url", url, tmp_path=tmp_path)
    _assert_one_line_error(result, words)
    assert "secret" not in result.stderr


def test_bad_mqtt_url_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _run_cli("--port", str(free_port()), "--mqtt-url", "http://h:1", tmp_path=tmp_path)
    _assert_one_line_error(result, "invalid MQTT_URL")
