"""The benchmark runner (``python -m bench``) and the ``--quick`` option, without running
a benchmark: ``make bench-quick`` (part of ``make test``) runs them all."""

from __future__ import annotations

import argparse

import pytest

from bench.__main__ import BENCHMARKS, HELPERS, last_json, main, unclassified
from bench.options import parse_args


def test_every_bench_module_is_a_benchmark_or_a_helper() -> None:
    assert unclassified() == []
    assert not set(BENCHMARKS) & HELPERS


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('table\n{"a": 1}\n', {"a": 1}),
        ('{"a": 1}\n\n', {"a": 1}),
        ('{"a": 1}\ndone\n', None),
        ("[1, 2]\n", None),
        ("", None),
    ],
)
def test_last_json_is_the_object_on_the_last_line(
    stdout: str, expected: dict[str, object] | None
) -> None:
    assert last_json(stdout) == expected


def test_an_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-bench"])
    assert exc.value.code == 2
    assert "not a benchmark: no-such-bench" in capsys.readouterr().err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    return parser


def test_quick_sets_its_defaults_and_options_given_win() -> None:
    full = parse_args(_parser(), [], seconds=0.5)
    assert (full.quick, full.seconds, full.runs) == (False, 20.0, 5)
    quick = parse_args(_parser(), ["--quick"], seconds=0.5)
    assert (quick.quick, quick.seconds, quick.runs) == (True, 0.5, 5)
    given = parse_args(_parser(), ["--quick", "--seconds", "2"], seconds=0.5)
    assert given.seconds == 2.0
