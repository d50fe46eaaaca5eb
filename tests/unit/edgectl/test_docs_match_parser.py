"""docs/edgectl.md says what the parser does: every option of every command is listed
under a heading naming the command, and every ``(default: X)`` written there is the
default edgectl applies, or, for a rollout option left to the control plane, the one
the control plane applies (checked by parsing X with edgectl's own option parsing)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from functools import cache

import pytest

from controlplane.rollouts.strategy import Strategy
from edgectl.cli import _parser
from edgectl.parser_tree import Path, commands, options, walk
from edgectl.push_cmds import GATE_OPTIONS, strategy_of
from tests.support.paths import REPO

DOC = REPO / "docs" / "edgectl.md"
GLOBAL = ("--url", "--token", "-v", "--verbose")
#: Commands whose rollout options the control plane fills in when they are left out,
#: with the arguments that make the rest of their command line.
ROLLOUT_COMMANDS: dict[Path, list[str]] = {
    ("push", "model"): ["push", "model", "m.onnx", "--name", "m", "--version", "1", "--fleet", "f"],
    ("models", "undeploy"): ["models", "undeploy", "m", "--fleet", "f"],
}
#: The options ``strategy_of`` turns into the rollout strategy (left out: the server's).
STRATEGY_OPTIONS = {
    "canary",
    "batches",
    "wait",
    "max_failures",
    "min_finished",
    "install_timeout",
    *GATE_OPTIONS,
}
_HEADING = re.compile(r"^#{2,6} (.*)$")
_COMMAND = re.compile(r"`edgectl((?: [a-z][a-z-]*)*)`")
_FLAG = re.compile(r"`(--?[a-z][a-z0-9-]*)")
_DEFAULT = re.compile(r"\(default: `?([^`)]+?)`?\)")
_CELL = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Documented:
    path: Path
    flag: str
    default: str | None


@cache
def parser() -> argparse.ArgumentParser:
    return _parser()


def headed() -> set[Path]:
    """The commands docs/edgectl.md names in a heading."""
    found = set()
    for line in DOC.read_text().splitlines():
        if (heading := _HEADING.match(line)) and (command := _COMMAND.search(heading.group(1))):
            found.add(tuple(command.group(1).split()))
    return found


def documented() -> list[Documented]:
    """Every option row of docs/edgectl.md under a heading that names a command."""
    found: list[Documented] = []
    path: Path | None = None
    for line in DOC.read_text().splitlines():
        if heading := _HEADING.match(line):
            command = _COMMAND.search(heading.group(1))
            path = tuple(command.group(1).split()) if command else None
            continue
        if path is None or not line.startswith("|"):
            continue
        cells = _CELL.split(line)[1:-1]
        if len(cells) < 2 or set(cells[1].strip()) <= {"-"}:
            continue
        default = _DEFAULT.search("|".join(cells[1:]))
        for flag in _FLAG.findall(cells[0]):
            found.append(Documented(path, flag, default.group(1) if default else None))
    return found


def _actions() -> dict[Path, dict[str, argparse.Action]]:
    """Each command's options by flag (the global ones only on edgectl itself)."""
    by_path: dict[Path, dict[str, argparse.Action]] = {}
    runnable = dict(commands(parser()))
    for path, sub in walk(parser()):
        if path and path not in runnable:
            continue
        by_path[path] = {
            flag: action
            for action in options(sub)
            for flag in action.option_strings
            if not path or flag not in GLOBAL
        }
    return by_path


def _has_value(default: object) -> bool:
    return default not in (None, argparse.SUPPRESS, False, [])


def test_the_doc_lists_every_command() -> None:
    missing = [" ".join(p) for p, _ in commands(parser()) if p not in headed()]
    assert missing == [], f"commands with no heading in {DOC.name}"


def test_every_option_is_documented() -> None:
    listed = {(d.path, d.flag) for d in documented()}
    missing = [
        f"edgectl {' '.join(path)} {flag}".replace("  ", " ")
        for path, flags in _actions().items()
        for flag, action in flags.items()
        if flag.startswith("--") and not any((path, f) in listed for f in action.option_strings)
    ]
    assert missing == [], f"options {DOC.name} does not list"


def test_every_documented_option_exists() -> None:
    actions = _actions()
    stale = [d for d in documented() if d.flag not in actions.get(d.path, {})]
    assert stale == [], f"{DOC.name} lists options the parser does not have"


def test_every_parser_default_is_documented() -> None:
    written = {(d.path, d.flag): d.default for d in documented()}
    undocumented = [
        f"edgectl {' '.join(path)} {flag} (default: {action.default})"
        for path, flags in _actions().items()
        for flag, action in flags.items()
        if flag.startswith("--")
        and _has_value(action.default)
        and written.get((path, flag)) is None
    ]
    assert undocumented == []


def _control_plane_applies(path: Path, flag: str, text: str) -> bool:
    """Sending ``flag text`` gives the strategy the control plane makes without it."""
    args = parser().parse_args([*ROLLOUT_COMMANDS[path], flag, text])
    return Strategy.from_json(strategy_of(args)) == Strategy()


@pytest.mark.parametrize(
    "doc",
    [d for d in documented() if d.default is not None],
    ids=lambda d: f"{' '.join(d.path)} {d.flag}",
)
def test_a_documented_default_is_the_applied_one(doc: Documented) -> None:
    action = _actions()[doc.path][doc.flag]
    assert doc.default is not None
    if _has_value(action.default):
        assert str(action.default) == doc.default
    elif doc.path in ROLLOUT_COMMANDS and action.dest in STRATEGY_OPTIONS:
        assert _control_plane_applies(doc.path, doc.flag, doc.default)
    else:  # edgectl decides when the option is left out: its help says how
        assert action.help is not None
        assert re.search(rf"default:? {re.escape(doc.default)}\b", action.help), action.help


def test_gate_min_requests_is_documented_as_100() -> None:
    """The figure issue 17 found wrong (the doc said 20) is the control plane's."""
    (doc,) = [
        d for d in documented() if d.path == ("push", "model") and d.flag == "--gate-min-requests"
    ]
    assert doc.default == str(Strategy().gate.min_requests) == "100"
