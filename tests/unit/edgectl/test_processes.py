"""edgectl's waiting on the demo's children: what it waits out, and what it raises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgectl.errors import EdgectlError, ServerError, UnreachableError
from edgectl.processes import ChildProcess, wait_for


def test_an_unreachable_or_starting_control_plane_is_waited_for() -> None:
    answers: list[Exception | bool] = [
        UnreachableError("connection refused"),
        ServerError("HTTP 503: starting", status_code=503),
        True,
    ]

    def predicate() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_for(predicate, timeout=10, what="it", children=[])
    assert answers == []


def test_a_refusal_is_raised_at_once_not_timed_out_on() -> None:
    def refused() -> bool:
        raise ServerError("HTTP 401: invalid token", status_code=401)

    with pytest.raises(ServerError, match="401"):
        wait_for(refused, timeout=30, what="it", children=[])


def test_a_dead_child_fails_the_wait_in_one_line(tmp_path: Path) -> None:
    child = ChildProcess("device", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "l")
    child.process.wait()
    with pytest.raises(EdgectlError, match="device exited with code 3"):
        wait_for(lambda: False, timeout=10, what="it", children=[child])
    child.stop()
