"""``edgectl completion bash|zsh``: the script runs in a real bash, its completion
function called as bash calls it (``COMP_WORDS``/``COMP_CWORD`` set), and completes
subcommands, options (the global ones after a subcommand too), choices and files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgectl.cli import main


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


@pytest.fixture
def script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "edgectl.bash"
    path.write_text(_script("bash", capsys))
    return path


def complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers after ``edgectl WORDS`` (the last word is the one being typed)."""
    program = (
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); '
        "_edgectl; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", str(script), "edgectl", *words],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=True,
    )
    assert done.stderr == ""
    return [line for line in done.stdout.splitlines() if line]


def test_the_script_registers_the_function(script: Path) -> None:
    done = subprocess.run(
        ["bash", "--norc", "-c", 'source "$1" && complete -p edgectl', "bash", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == "complete -F _edgectl edgectl"


def test_subcommands(script: Path) -> None:
    top = complete(script, "")
    assert {"devices", "fleets", "rollouts", "push", "completion", "keys"} <= set(top)
    assert complete(script, "fl") == ["fleets"]
    assert complete(script, "fleets", "") == ["list", "show"]
    assert complete(script, "--url", "http://cp:8080", "rollouts", "s") == ["show"]


def test_options_of_the_command_typed_so_far(script: Path) -> None:
    assert complete(script, "devices", "list", "--f") == ["--fleet"]
    assert set(complete(script, "devices", "list", "--")) >= {"--json", "--url", "--token"}
    # an option's value is skipped: --fleet's value "eu" is not taken for a subcommand
    assert complete(script, "devices", "list", "--fleet", "eu", "--js") == ["--json"]
    assert complete(script, "--v") == ["--version", "--verbose"]


def test_choices_and_files(script: Path, tmp_path: Path) -> None:
    assert complete(script, "rollouts", "list", "--state", "") == [
        "running",
        "paused",
        "completed",
        "aborted",
    ]
    assert complete(script, "keys", "create", "--role", "r") == ["root", "release"]
    assert complete(script, "completion", "") == ["bash", "zsh"]
    (tmp_path / "trust-v1.json").write_text("{}")
    assert complete(script, "trust", "show", "tru", cwd=tmp_path) == ["trust-v1.json"]
    assert complete(script, "bundle", "verify", "b", "--trust", "tr", cwd=tmp_path) == [
        "trust-v1.json"
    ]


def test_zsh_script_wraps_the_bash_functions(capsys: pytest.CaptureFixture[str]) -> None:
    text = _script("zsh", capsys)
    assert "bashcompinit" in text and "complete -F _edgectl edgectl" in text
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed: its script's syntax is not checked")
    subprocess.run([zsh, "-n"], input=text, text=True, timeout=30, check=True)
