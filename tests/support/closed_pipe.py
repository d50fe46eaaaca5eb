"""Run the installed ``edgectl`` with its stdout a pipe that nobody reads any more, as
``edgectl ... | head -1`` leaves it once ``head`` has its line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO

#: The console script pip installed next to this interpreter.
EDGECTL = Path(sys.executable).parent / "edgectl"


@dataclass(frozen=True)
class Finished:
    code: int
    stderr: str


def run_with_closed_stdout(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Finished:
    """``edgectl ARGS`` writing into a pipe whose read end is closed before it starts, so
    its first write (or final flush) finds no reader, every time."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(EDGECTL), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    finally:
        os.close(write_end)
    return Finished(done.returncode, done.stderr.decode(errors="replace"))


def run_into_head(*args: str, lines: int = 1, timeout: float = 60.0) -> tuple[Finished, str]:
    """``edgectl ARGS | head -LINES`` in a real bash with pipefail: edgectl's result and
    what head printed."""
    command = f'"$0" "$@" | head -{lines}'
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command, str(EDGECTL), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    return Finished(done.returncode, done.stderr.decode(errors="replace")), done.stdout.decode()
