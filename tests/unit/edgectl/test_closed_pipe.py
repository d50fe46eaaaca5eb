"""A closed pipe ends edgectl quietly: no traceback, exit 141 (as if killed by SIGPIPE).

Each case runs the installed console script in a real child process whose stdout's
reader is gone; ``tests/integration/test_edgectl_fleets.py`` does the same for commands
that ask a control plane first."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgectl.pipes import EXIT_CLOSED_PIPE
from tests.support.closed_pipe import run_into_head, run_with_closed_stdout


def test_a_closed_stdout_exits_141_without_a_traceback() -> None:
    done = run_with_closed_stdout("completion", "bash")
    assert done.stderr == ""
    assert done.code == EXIT_CLOSED_PIPE == 141


@pytest.mark.parametrize("args", [["--help"], ["rollouts", "show", "--help"], ["--version"]])
def test_help_and_version_into_a_closed_pipe_are_quiet(args: list[str]) -> None:
    done = run_with_closed_stdout(*args)
    assert done.stderr == ""
    # argparse prints these itself and drops a write error (exit 0); an error left for
    # the final flush exits 141
    assert done.code in (0, EXIT_CLOSED_PIPE)


def test_keys_create_into_a_closed_pipe(tmp_path: Path) -> None:
    done = run_with_closed_stdout("keys", "create", "--out", str(tmp_path), "--json")
    assert (done.code, done.stderr) == (EXIT_CLOSED_PIPE, "")
    assert (tmp_path / "release.key").is_file()  # the work was done; only the output was lost


def test_head_takes_its_line_and_edgectl_stays_quiet() -> None:
    done, out = run_into_head("completion", "bash", lines=1)
    assert out == "# bash completion for edgectl (made by 'edgectl completion bash')\n"
    assert done.stderr == ""
    assert done.code in (0, EXIT_CLOSED_PIPE)  # 0 when edgectl finished before head left


def test_errors_still_reach_stderr_when_stdout_is_closed() -> None:
    done = run_with_closed_stdout("--url", "http://127.0.0.1:9", "rollouts", "show", "7")
    assert done.code == 3
    assert done.stderr.startswith("edgectl: error: cannot reach the control plane at")
    assert "Traceback" not in done.stderr
