"""``edge-agent simulate``: a bad ``--slow`` rule, ``--traffic-hz`` or ``--memory-budget-mb``
is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main


def _simulate(tmp_path: Path, *more: str) -> list[str]:
    return [
        "simulate",
        "--count",
        "2",
        "--fleet",
        "lab",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--control-plane",
        "http://127.0.0.1:1",
        "--data-dir",
        str(tmp_path),
        "--root-key",
        str(tmp_path / "root.pub"),
        *more,
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--slow", "det=fast"), "edge-agent: error: --slow: bad duration 'fast'"),
        (("--slow", "det:2.0=4ms@x"), "edge-agent: error: --slow: bad device set 'x'"),
        (("--traffic-hz", "0"), "edge-agent: error: --traffic-hz must be above 0"),
        (
            ("--memory-budget-mb", "0"),
            "edge-agent: error: simulated device sim-lab-000: memory_budget_mb: "
            "Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_simulation_knobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    assert main(_simulate(tmp_path, *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--count", "500"),
            "edge-agent: error: --count 500: one process holds at most 96 full simulated "
            "agents (each holds about 10 open files, and paho's network thread cannot use one "
            "numbered 1024 or above); use --light",
        ),
        (("--full", "2"), "edge-agent: error: --full and --private-downloads go with --light"),
        (("--light", "--workers", "0"), "edge-agent: error: --workers must be at least 1"),
        (("--light", "--full", "-1"), "edge-agent: error: --full must not be negative"),
        (("--light", "--full", "97"), "edge-agent: error: --count 97: one process holds"),
        (("--light",), "edge-agent: error: "),  # the root key file does not exist
    ],
)
def test_fleet_sizes_a_process_cannot_hold_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    argv = _simulate(tmp_path, *flags)
    if "--count" in flags:  # the later --count wins
        argv = [a for i, a in enumerate(argv) if i not in (1, 2)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err, err
