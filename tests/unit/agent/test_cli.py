"""edge-agent CLI: bad input is one line on stderr with exit 2, never a traceback."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.logsetup import JournalFormatter, writes_to_journal
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


def test_journal_lines_carry_their_syslog_priority() -> None:
    def line(level: int, message: str, exc: bool = False) -> str:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info() if exc else None
        record = logging.LogRecord("agent.x", level, __file__, 1, message, (), info)
        return JournalFormatter().format(record)

    assert line(logging.WARNING, "not enrolled") == "<4>WARNING agent.x: not enrolled"
    assert line(logging.INFO, "started") == "<6>INFO agent.x: started"
    assert line(logging.DEBUG, "detail") == "<7>DEBUG agent.x: detail"
    assert line(logging.CRITICAL, "down").startswith("<2>")
    failed = line(logging.ERROR, "failed", exc=True).splitlines()
    assert len(failed) > 2 and all(part.startswith("<3>") for part in failed)  # + traceback
    assert failed[-1] == "<3>ValueError: boom"


def test_only_the_stream_systemd_connected_is_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w") as journal, (tmp_path / "file").open("w") as other:
        st = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert writes_to_journal(journal)
        assert not writes_to_journal(other)  # stderr redirected by a parent: timestamps
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not writes_to_journal(journal)  # not under systemd at all
    assert not writes_to_journal(journal)  # closed
    assert not writes_to_journal(io.StringIO())  # no file descriptor
