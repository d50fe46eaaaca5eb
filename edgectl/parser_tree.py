"""Walks edgectl's argparse tree: every (sub)command and its options.

Shell completion, the global options accepted after any subcommand and the test that
compares docs/edgectl.md with the parser all read the tree through these functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

#: A command's words after ``edgectl``: ``("devices", "list")``; ``()`` is edgectl itself.
Path = tuple[str, ...]


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (empty for a leaf command)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def walk(
    parser: argparse.ArgumentParser, path: Path = ()
) -> Iterator[tuple[Path, argparse.ArgumentParser]]:
    """``parser`` and every parser below it, depth first, with their paths."""
    yield path, parser
    for name, sub in subcommand_parsers(parser).items():
        yield from walk(sub, (*path, name))


def commands(parser: argparse.ArgumentParser) -> Iterator[tuple[Path, argparse.ArgumentParser]]:
    """The commands one can run: the parsers without subcommands."""
    for path, sub in walk(parser):
        if path and not subcommand_parsers(sub):
            yield path, sub


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's options (``--x``), ``--help`` left out."""
    return [
        a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]


def positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's positional arguments, subcommand choosers left out."""
    return [
        a
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]


def takes_value(action: argparse.Action) -> bool:
    """Whether the option is followed by a value (``--fleet F``, not ``--json``)."""
    return action.nargs != 0
