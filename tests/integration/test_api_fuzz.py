"""schemathesis against a live control plane (issue 16.4): every operation of
``/openapi.json`` with generated valid and invalid inputs, and every check it has
(``--checks all``: no 5xx, status codes, content types, headers and bodies as
documented, invalid data refused and valid data accepted, ``Allow`` on 405, auth not
ignored, ...), with an admin token and without one. Bounded: a fixed seed and a few
examples per operation, so a run takes well under a minute here and repeats exactly.

``tests/schemathesis.toml`` lists the operations that refuse some schema-valid data for
reasons no schema can state (a blob whose bytes do not hash to its digest, signatures
that do not verify), and why. The run with the token leaves out revoking tokens: it
would revoke its own token at random and test the rest unauthenticated; that operation
runs alone, last.

A control-plane process of its own (SQLite, its own Mosquitto); nothing in it is mocked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ADMIN_TOKEN, ControlPlaneProcess, run_controlplane
from tests.support.mosquitto import run_mosquitto
from tests.support.trust import make_trust_kit

pytestmark = pytest.mark.integration

#: examples per operation and phase; the seed makes the run the same every time
EXAMPLES = 20
SEED = 16
#: a run takes ~30 s here; this bounds one that hangs
TIMEOUT_S = 300
CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"
REVOKE = "DELETE /api/v1/tokens/{token_id}"
TOKEN = f"Authorization: Bearer {ADMIN_TOKEN}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    kit = make_trust_kit(root / "trust")
    with (
        run_mosquitto(root / "mosquitto") as broker,
        run_controlplane(root / "cp", mqtt_url=broker.url, trust_kit=kit) as process,
    ):
        yield process


def _schemathesis(
    process: ControlPlaneProcess, workdir: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary is not None, "schemathesis is a dev dependency (make install)"
    argv = [
        binary, "--config-file", str(CONFIG), "run", f"{process.url}/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--generation-database", "none",
        "--no-color", "--report", "junit", "--report-dir", str(workdir), *extra,
    ]  # fmt: skip
    # in tmp_path: schemathesis keeps a cache in the directory it runs in
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=workdir)


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((done.stdout + done.stderr).splitlines()[-80:])


def test_schemathesis_finds_nothing_with_a_token(
    served: ControlPlaneProcess, tmp_path: Path
) -> None:
    done = _schemathesis(served, tmp_path, "--header", TOKEN, "--exclude-name", REVOKE)
    assert done.returncode == 0, _tail(done)
    assert "Authentication failed" not in done.stdout, _tail(done)  # the token held


def test_schemathesis_finds_nothing_without_a_token(
    served: ControlPlaneProcess, tmp_path: Path
) -> None:
    done = _schemathesis(served, tmp_path)
    assert done.returncode == 0, _tail(done)


def test_schemathesis_finds_nothing_revoking_tokens(
    served: ControlPlaneProcess, tmp_path: Path
) -> None:
    """Last: it may revoke the token it runs with."""
    done = _schemathesis(served, tmp_path, "--header", TOKEN, "--include-name", REVOKE)
    assert done.returncode == 0, _tail(done)
