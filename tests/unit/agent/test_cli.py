"""edge-agent CLI: bad input is one line on stderr with exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from tests.support.trust import make_trust_kit


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_probe_json() -> None:
    result = _run("probe", "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["logical_cores"] >= 1 and "CPUExecutionProvider" in facts["onnxruntime_providers"]
    assert isinstance(facts["profile"], str) and len(facts["fingerprint"]) == 64
    assert "onnxruntime:CPUExecutionProvider:f32" in facts["candidates"]


def test_probe_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert "logical_cores" in rows and "fingerprint" in rows
    assert "onnxruntime:CPUExecutionProvider:f32" in rows["candidates"].split()
    assert rows["profile"] != "-"


def test_missing_config_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _run("run", "--config", str(tmp_path / "agent.toml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("edge-agent: error:")
    assert "Traceback" not in result.stderr and "no such config file" in result.stderr


_CONFIG = (
    'device_id = "d1"\nfleet = "f"\nbroker_url = "mqtt://127.0.0.1:1"\n'
    'control_plane_url = "http://127.0.0.1:1"\ndata_dir = "data"\nlocal_api = "127.0.0.1:0"\n'
)


def test_missing_root_key_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(_CONFIG + 'root_keys = ["missing.pub"]\n')
    result = _run("run", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "root_keys" in result.stderr


def test_trust_file_not_signed_by_the_pinned_root_is_one_line_exit_2(tmp_path: Path) -> None:
    kit = make_trust_kit(tmp_path / "kit")
    other = make_trust_kit(tmp_path / "other")  # another root signed this trust file
    config = tmp_path / "agent.toml"
    config.write_text(_CONFIG + f'root_keys = ["{kit.root_pub}"]\ntrust = "{other.trust_file}"\n')
    result = _run("run", "--config", str(config))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("edge-agent: error: trust:") and "pinned root" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["simulate", "--count", "x"],
        [
            "simulate",
            "--count",
            "0",
            "--fleet",
            "f",
            "--broker",
            "mqtt://h",
            "--control-plane",
            "http://h",
            "--data-dir",
            "d",
            "--root-key",
            "k",
        ],
        [
            "simulate",
            "--count",
            "1",
            "--fleet",
            "f",
            "--broker",
            "nope",
            "--control-plane",
            "http://h",
            "--data-dir",
            "d",
            "--root-key",
            "k",
        ],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str]) -> None:
    result = _run(*argv)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
