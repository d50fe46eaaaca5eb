"""Bad ``edgectl`` arguments: one line on stderr, exit 2, before anything is built or
sent (the control-plane URL here refuses connections, which would be exit 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from edgectl.errors import UnreachableError
from edgectl.wait import follow_rollout
from tests.support.ports import free_port

URL = f"http://127.0.0.1:{free_port()}"


def _push(tmp_path: Path, *extra: str) -> list[str]:
    model = tmp_path / "m.onnx"  # never read: the options are checked first
    return ["--url", URL, "push", "model", str(model), "--name", "det", "--version", "1", *extra]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("edgectl: error: ") and "\n" not in err, err
    assert captured.out == ""
    return err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--canary", "0"], "invalid --canary '0'"),
        (["--canary", "150%"], "invalid --canary '150%'"),
        (["--selector", "hw"], "invalid selector 'hw'"),
        (["--wait", "5 minutes"], "invalid --wait '5 minutes'"),
        (["--timeout", "soon"], "invalid --timeout 'soon'"),
        (["--batches", "0"], "invalid --batches '0'"),
        (["--max-failures", "120%"], "invalid --max-failures '120%'"),
        (["--min-finished", "x"], "invalid --min-finished 'x'"),
        (["--gate-latency=-5%"], "invalid --gate-latency '-5%'"),
        (["--gate-no-traffic", "0s"], "expected a duration above 0"),
        (["--no-gate", "--gate-latency", "10%"], "--no-gate contradicts --gate-latency"),
    ],
)
def test_bad_rollout_options(
    tmp_path: Path, extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_push(tmp_path, "--fleet", "f", *extra)) == 2
    assert fragment in _one_line(capsys)


def test_rollout_options_need_a_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_push(tmp_path, "--canary", "2", "--detach")) == 2
    assert "--canary, --detach need --fleet" in _one_line(capsys)


def test_argparse_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--url", URL, "push", "model", "m.onnx", "--name", "det", "--gate-action", "stop"])
    assert info.value.code == 2
    err = _one_line(capsys)
    assert "invalid choice: 'stop'" in err and "edgectl push model --help" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["devices", "list", "--selector", "a=b,,c=d"], "invalid selector"),
        (["devices", "label", "sim-000", "region"], "invalid label 'region'"),
        (["devices", "label", "sim-000"], "no labels given"),
        (["rollouts", "show", "seven"], "invalid rollout id 'seven'"),
        (["rollouts", "show", "7", "--watch", "--timeout", "1x"], "invalid --timeout '1x'"),
        (["rollback", "0"], "invalid rollout id '0'"),
        (["models", "undeploy", "det", "--fleet", "f", "--canary", "0"], "invalid --canary '0'"),
        (["models", "undeploy", "det", "--fleet", "f", "--selector", "hw"], "invalid selector"),
        (["models", "undeploy", "det", "--fleet", "f", "--install-timeout", "x"], "--install"),
        (
            [
                "push",
                "model",
                "m.onnx",
                "--name",
                "d",
                "--version",
                "1",
                "--deploy-priority",
                "high",
            ],
            "--deploy-priority needs --fleet",
        ),
    ],
)
def test_other_commands_check_their_input_first(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", URL, *argv]) == 2
    assert fragment in _one_line(capsys)


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "130"):
        assert f"\n  {code}" in out
    assert "rollouts" in out and "rollback" in out


class _Flaky:
    """Answers from a script: a dict, or an exception to raise."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


class _Time:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_follow_rides_out_a_control_plane_restart_and_stops_when_done() -> None:
    down = UnreachableError("cannot reach the control plane at x: refused")
    running, done = {"id": 1, "state": "running"}, {"id": 1, "state": "completed"}
    client = _Flaky([running, down, down, running, done])
    seen: list[str] = []
    notes: list[str | None] = []
    t = _Time()
    followed = follow_rollout(
        client,  # type: ignore[arg-type]
        1,
        on_update=lambda r: seen.append(r["state"]),
        on_note=notes.append,
        clock=t.clock,
        sleep=t.sleep,
    )
    assert followed.rollout == done and not followed.timed_out
    assert seen == ["running", "running", "completed"]
    assert notes[0] is not None and "unreachable" in notes[0] and notes[-1] is None


def test_follow_gives_up_after_the_grace_and_on_timeout() -> None:
    down = UnreachableError("cannot reach the control plane at x: refused")
    t = _Time()
    with pytest.raises(UnreachableError):
        follow_rollout(
            _Flaky([down] * 10),  # type: ignore[arg-type]
            1,
            on_update=lambda _: None,
            grace=3,
            clock=t.clock,
            sleep=t.sleep,
        )
    t = _Time()
    followed = follow_rollout(
        _Flaky([{"id": 1, "state": "running"}] * 10),  # type: ignore[arg-type]
        1,
        on_update=lambda _: None,
        timeout=2.5,
        clock=t.clock,
        sleep=t.sleep,
    )
    assert followed.timed_out and t.now == 3.0
