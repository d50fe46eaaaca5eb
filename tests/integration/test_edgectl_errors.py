"""Bad input to edgectl: one clear line on stderr, a non-zero exit code, nothing half done."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from edgectl.cli import main
from model_store import write_keypair
from tests.support.controlplane import ADMIN_TOKEN, run_controlplane
from tests.support.mosquitto import Broker
from tests.support.onnx_models import affine_model
from tests.support.ports import free_port
from tests.support.trust import TrustKit


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "keys", "release")


def _push(url: str, model: Path, key: Path, *extra: str) -> list[str]:
    return [
        "--url",
        url,
        "--token",
        ADMIN_TOKEN,
        "push",
        "model",
        str(model),
        "--name",
        "det",
        "--version",
        "1.0.0",
        "--key",
        str(key),
        *extra,
    ]


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgectl: error: "), err
    assert "\n" not in err and "Traceback" not in err
    return err


def test_missing_model_file(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_push("http://127.0.0.1:9", tmp_path / "nope.onnx", keys[0], "--fleet", "f"))
    assert code == 2
    assert "model not found" in _one_line_error(capsys)


def test_missing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = affine_model(tmp_path / "m.onnx")
    assert main(_push("http://127.0.0.1:9", model, tmp_path / "missing.key")) == 2
    assert "signing key not found" in _one_line_error(capsys)


def test_key_that_is_not_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = affine_model(tmp_path / "m.onnx")
    bogus = tmp_path / "bogus.key"
    bogus.write_text("not a pem key\n")
    assert main(_push("http://127.0.0.1:9", model, bogus)) == 2
    _one_line_error(capsys)


def test_file_that_is_not_onnx(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    assert main(_push("http://127.0.0.1:9", junk, keys[0])) == 2
    _one_line_error(capsys)


def test_unreachable_control_plane(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = affine_model(tmp_path / "m.onnx")
    url = f"http://127.0.0.1:{free_port()}"
    assert main(_push(url, model, keys[0], "--fleet", "f")) == 3
    assert "cannot reach the control plane" in _one_line_error(capsys)


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgectl.cli",
            "push",
            "model",
            str(tmp_path / "x.onnx"),
            "--name",
            "det",
            "--version",
            "1",
            "--key",
            str(tmp_path / "k"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_fleet_is_one_clear_line_before_any_upload(
    tmp_path: Path,
    trust_kit: TrustKit,
    mosquitto: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = affine_model(tmp_path / "m.onnx")
    with run_controlplane(tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit) as cp:
        assert main(_push(cp.url, model, trust_kit.release_key, "--fleet", "nope")) == 1
        err = _one_line_error(capsys)
        assert "unknown fleet 'nope'" in err and "404" in err
        assert httpx.get(f"{cp.url}/api/v1/models", headers=cp.headers, timeout=5).json() == []
        assert not [p for p in (cp.data_dir / "blobs").rglob("*") if p.is_file()]


def test_invalid_url_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://[::1", "devices", "list"]) == 2
    assert "invalid control-plane URL" in _one_line_error(capsys)
    assert main(["--url", "ftp://host", "devices", "list"]) == 2
    _one_line_error(capsys)


class _HtmlHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>hello from some proxy</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_not_the_control_plane(capsys: pytest.CaptureFixture[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(["--url", url, "devices", "list"]) == 1
        assert "not JSON" in _one_line_error(capsys)
    finally:
        server.shutdown()
        server.server_close()
