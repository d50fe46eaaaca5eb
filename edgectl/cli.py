"""``edgectl``: the operator CLI. Errors are one line on stderr; exit codes: errors.py."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import metadata
from pathlib import Path
from typing import NoReturn

from edgectl import (
    alerts_cmds,
    audit_cmds,
    bundle_cmds,
    completion,
    config,
    device_cmds,
    fleet_cmds,
    key_cmds,
    model_cmds,
    pin_cmds,
    push_cmds,
    rollout_cmds,
    token_cmds,
    trend_cmds,
    trust_cmds,
)
from edgectl.errors import EXIT_CODES, EdgectlError, UsageError
from edgectl.global_options import accept_after_subcommands, add_global_options
from edgectl.pipes import quiet_on_closed_pipe
from model_store import ModelStoreError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other edgectl error), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"edgectl: error: {message} (see '{self.prog} --help')\n")


def version() -> str:
    """The installed package's version (``edgectl --version``)."""
    try:
        return metadata.version("edgefleet")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgectl",
        description="Operate an EdgeFleet fleet.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgectl {version()}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    key_cmds.add_commands(sub)
    trust_cmds.add_commands(sub)
    bundle_cmds.add_commands(sub)

    push_cmds.add_commands(sub)
    device_cmds.add_commands(sub)
    fleet_cmds.add_commands(sub)
    model_cmds.add_commands(sub)
    rollout_cmds.add_commands(sub)
    pin_cmds.add_commands(sub)
    token_cmds.add_commands(sub)
    trend_cmds.add_commands(sub)
    audit_cmds.add_commands(sub)
    alerts_cmds.add_commands(sub)

    demo = sub.add_parser("demo", help="run the whole product locally with simulated devices")
    demo.add_argument("--keep", action="store_true", help="keep everything running")
    demo.add_argument("--workdir", type=Path, default=None, help="keep state in this directory")
    demo.set_defaults(handler=_cmd_demo)
    completion.add_commands(sub, parser)

    accept_after_subcommands(parser)  # last: every subcommand takes --url, --token, -v
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from edgectl.demo import run_demo  # heavy imports (onnxruntime) only when needed

    return run_demo(keep=args.keep, workdir=args.workdir)


def _run(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config.apply(args)  # --url / --token, else env, else config file, else default
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModelStoreError as exc:
        print(f"edgectl: error: {exc}", file=sys.stderr)
        return UsageError.exit_code
    except EdgectlError as exc:
        print(f"edgectl: error: {exc}", file=sys.stderr)
        return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run one edgectl command; its exit code (141 when stdout's reader went away)."""
    return quiet_on_closed_pipe(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
