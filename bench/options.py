"""The ``--quick`` option every benchmark takes (a helper, not a benchmark).

``--quick`` runs the same code path as a full run, baseline or floor included, with
fewer iterations or models, so that ``python -m bench --quick`` (and ``make test``) can
run every benchmark in a few seconds each and notice when one breaks. Its figures are
not for publishing: the JSON line says ``"quick": true``. Options given on the command
line win over the quick settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, **quick: object
) -> argparse.Namespace:
    """Add ``--quick`` to ``parser`` and parse ``argv``; with ``--quick``, the defaults
    of the options named in ``quick`` become its values."""
    settings = ", ".join(f"--{k.replace('_', '-')} {_arg(v)}" for k, v in quick.items())
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a few seconds, the same code path, figures not for publishing ({settings})",
    )
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def _arg(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
