"""The options every edgectl command takes: ``--url``, ``--token``, ``-v``.

They are accepted before the subcommand (``edgectl --url X devices list``) and after it
(``edgectl devices list --url X``). Each subcommand declares them with
``default=SUPPRESS``, so that one given before the subcommand is not reset by the
subcommand's default; given twice, the last one wins.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgectl.client import DEFAULT_URL
from edgectl.config import CONFIG_ENV, TOKEN_ENV, URL_ENV
from edgectl.parser_tree import walk


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """Add ``--url``, ``--token`` and ``-v`` (``suppress``: no default, for subcommands)."""
    group = parser.add_argument_group("global options") if suppress else parser

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group.add_argument(
        "--url",
        default=default(None),
        help=f"control-plane URL (env {URL_ENV}, config file url, default {DEFAULT_URL})",
    )
    group.add_argument(
        "--token",
        default=default(None),
        help=f"API bearer token (env {TOKEN_ENV}, config file token; see {CONFIG_ENV})",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="log progress to stderr",
    )


def accept_after_subcommands(parser: argparse.ArgumentParser) -> None:
    """Let every subcommand below ``parser`` take the global options too."""
    for path, sub in walk(parser):
        if path:
            add_global_options(sub, suppress=True)
