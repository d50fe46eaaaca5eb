"""edgectl's waiting on the demo's children: what it waits out, and what it raises."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from edgectl import processes
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


def test_free_ports_are_never_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel may offer one free port to two calls in a row: a fleet's servers collided
    offered = iter([41001, 41001, 41001, 41002])

    class _Socket:
        def __init__(self, *args: object) -> None:
            self.port = next(offered)

        def __enter__(self) -> _Socket:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def bind(self, address: object) -> None:
            return None

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(processes.socket, "socket", _Socket)
    monkeypatch.setattr(processes, "_HANDED_OUT", set())
    assert (processes.free_port(), processes.free_port()) == (41001, 41002)


def test_free_ports_from_the_kernel_are_distinct_and_free() -> None:
    ports = [processes.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # nothing holds it


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="running a child as another user needs root",
)
def test_a_child_runs_as_the_user_asked_for_with_that_users_group_only(tmp_path: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    log = tmp_path / "id.log"
    command = "id -u; id -g; id -G"
    child = ChildProcess("id", ["/bin/sh", "-c", command], log, user="nobody")
    try:
        assert child.process.wait(timeout=10) == 0
    finally:
        child.stop()
    uid, gid, groups = log.read_text().split("\n")[:3]
    assert (int(uid), int(gid), groups.split()) == (
        nobody.pw_uid,
        nobody.pw_gid,
        [str(nobody.pw_gid)],
    )
    assert os.geteuid() == 0  # the caller is unchanged
