"""``edgectl``: the operator CLI. Errors are one line on stderr; exit codes: errors.py."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import NoReturn

from edgectl import (
    alerts_cmds,
    audit_cmds,
    bundle_cmds,
    config,
    device_cmds,
    model_cmds,
    pin_cmds,
    push_cmds,
    rollout_cmds,
    token_cmds,
    trend_cmds,
    trust_cmds,
)
from edgectl.client import DEFAULT_URL
from edgectl.errors import EXIT_CODES, EdgectlError, UsageError
from model_store import ModelStoreError, Role, key_id, load_public_key, write_keypair

URL_ENV = "EDGECTL_URL"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other edgectl error), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"edgectl: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgectl",
        description="Operate an EdgeFleet fleet.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=None,
        help=f"control-plane URL (env {URL_ENV}, config file url, default {DEFAULT_URL})",
    )
    config.add_token_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_cmd", required=True
    )
    create = keys.add_parser("create", help="write an ECDSA P-256 key pair (PEM)")
    create.add_argument("--out", type=Path, required=True, help="directory for the key pair")
    create.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.RELEASE.value,
        help="what the key is for (default: release)",
    )
    create.add_argument("--name", default=None, help="file stem (default: the role)")
    trust_cmds.add_commands(sub)
    bundle_cmds.add_commands(sub)

    push_cmds.add_commands(sub)
    device_cmds.add_commands(sub)
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
    return parser


def _cmd_keys_create(args: argparse.Namespace) -> int:
    key, pub = write_keypair(args.out, args.name or args.role)
    print(f"private key: {key}\npublic key:  {pub}")
    print(f"{args.role} key id: {key_id(load_public_key(pub))}")
    if args.role == Role.ROOT:
        print("keep the root private key offline; pin the .pub on devices")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edgectl.demo import run_demo  # heavy imports (onnxruntime) only when needed

    return run_demo(keep=args.keep, workdir=args.workdir)


_COMMANDS = {
    ("keys", "create"): _cmd_keys_create,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sub = str(getattr(args, f"{args.command}_cmd", ""))
    handler = getattr(args, "handler", None) or (
        _cmd_demo if args.command == "demo" else _COMMANDS[(args.command, sub)]
    )
    try:
        config.apply(args)  # --url / --token, else env, else config file, else default
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModelStoreError as exc:
        print(f"edgectl: error: {exc}", file=sys.stderr)
        return UsageError.exit_code
    except EdgectlError as exc:
        print(f"edgectl: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
