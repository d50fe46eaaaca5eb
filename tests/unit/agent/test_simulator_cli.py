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
