"""``edgectl tokens create|list|revoke`` and edgectl's token sources, on a real control plane.

The control plane runs as a process (its bootstrap admin token is ``ADMIN_TOKEN``); the
CLI runs in-process, and once as a console command, with its environment under test
control (no ``EDGECTL_*`` from the caller, a config file of the test's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from tests.support.controlplane import ADMIN_TOKEN, ControlPlaneProcess, run_controlplane
from tests.support.mosquitto import Broker
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


@pytest.fixture
def cp(tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit) as cp:
        yield cp


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No EDGECTL_* from outside; EDGECTL_CONFIG points at a file of the test's (absent)."""
    for name in ("EDGECTL_URL", "EDGECTL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "edgectl.toml"
    monkeypatch.setenv("EDGECTL_CONFIG", str(config))
    return config


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def test_create_list_revoke(
    cp: ControlPlaneProcess, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECTL_URL", cp.url)
    monkeypatch.setenv("EDGECTL_TOKEN", ADMIN_TOKEN)
    created = _json(capsys, "tokens", "create", "--name", "ci", "--role", "operator", "--json")
    assert created["role"] == "operator" and created["token"].startswith("efk_")

    code, out, _ = _run(capsys, "tokens", "create", "--name", "dash", "--role", "viewer")
    assert code == 0
    line, hint = out.strip().splitlines()
    assert line.startswith("token 3 (dash, viewer): efk_") and "shown only now" in hint
    viewer = line.rsplit(" ", 1)[1]

    code, out, _ = _run(capsys, "tokens", "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:4] == ["ID", "NAME", "ROLE", "PREFIX"]
    assert [r.split()[:3] for r in rows] == [
        ["1", "bootstrap", "admin"],
        ["2", "ci", "operator"],
        ["3", "dash", "viewer"],
    ]
    assert created["token"] not in out and viewer not in out and ADMIN_TOKEN not in out
    assert created["prefix"] in out

    # the operator token works until revoked; then one line, exit 1
    operator = ["--token", created["token"]]
    assert _run(capsys, *operator, "devices", "list")[0] == 0
    code, out, _ = _run(capsys, "tokens", "revoke", str(created["id"]))
    assert (code, out.strip()) == (0, f"revoked token {created['id']} (ci, operator)")
    code, _, err = _run(capsys, *operator, "devices", "list")
    assert code == 1
    assert err.strip() == (
        "edgectl: error: control plane refused GET /api/v1/devices (401): "
        "invalid or revoked token (set EDGECTL_TOKEN or --token)"
    )
    listed = _json(capsys, "tokens", "list", "--json")
    assert [t["revoked_at"] is not None for t in listed] == [False, True, False]

    # a viewer may read but not manage tokens
    code, _, err = _run(capsys, "--token", viewer, "tokens", "list")
    assert code == 1 and err.count("\n") == 1
    assert "(403): role viewer may not GET /api/v1/tokens" in err and "EDGECTL_TOKEN" in err
    # an unknown id, an unknown role
    code, _, err = _run(capsys, "tokens", "revoke", "99")
    assert code == 1 and "unknown token 99" in err
    with pytest.raises(SystemExit) as usage:
        main(["tokens", "create", "--name", "x", "--role", "root"])
    assert usage.value.code == 2
    capsys.readouterr()


def test_missing_token_is_one_line_with_a_hint(
    cp: ControlPlaneProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--url", cp.url, "devices", "list")
    assert code == 1
    assert err.strip() == (
        "edgectl: error: control plane refused GET /api/v1/devices (401): "
        "missing bearer token (set EDGECTL_TOKEN or --token)"
    )


def test_token_and_url_precedence_flag_env_file(
    cp: ControlPlaneProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
) -> None:
    # the config file alone is enough
    clean_env.write_text(f'url = "{cp.url}"\ntoken = "{ADMIN_TOKEN}"\n')
    clean_env.chmod(0o600)
    code, _, err = _run(capsys, "tokens", "list")
    assert (code, err) == (0, "")
    # the environment wins over the file ...
    monkeypatch.setenv("EDGECTL_TOKEN", "efk_wrong-token-from-the-env")
    code, _, err = _run(capsys, "tokens", "list")
    assert code == 1 and "invalid or revoked token" in err
    # ... and the flag over the environment
    assert _run(capsys, "--token", ADMIN_TOKEN, "tokens", "list")[0] == 0
    # a URL from the environment wins over the file's
    monkeypatch.setenv("EDGECTL_URL", "http://127.0.0.1:9")
    assert _run(capsys, "--token", ADMIN_TOKEN, "tokens", "list")[0] == 3
    monkeypatch.delenv("EDGECTL_URL")
    monkeypatch.delenv("EDGECTL_TOKEN")
    # a file others can read: a one-line warning, and the command still runs
    clean_env.chmod(0o644)
    code, _, err = _run(capsys, "tokens", "list")
    assert code == 0
    assert err.count("\n") == 1 and "edgectl: warning:" in err and "chmod 600" in err
    assert ADMIN_TOKEN not in err
    # a broken file: one line, exit 2
    clean_env.write_text("token = \n")
    code, _, err = _run(capsys, "tokens", "list")
    assert code == 2 and err.startswith("edgectl: error: config file") and err.count("\n") == 1


def test_console_command_reads_edgectl_token(cp: ControlPlaneProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    env |= {
        "EDGECTL_URL": cp.url,
        "EDGECTL_TOKEN": ADMIN_TOKEN,
        "EDGECTL_CONFIG": str(tmp_path / "none.toml"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "edgectl.cli", "tokens", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert [t["name"] for t in json.loads(result.stdout)] == ["bootstrap"]
