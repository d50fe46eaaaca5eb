"""``edgectl keys create``: an ECDSA P-256 key pair (PEM) for a role of the trust document.

It prints the two files and the key id (``--json``: ``{"role", "private_key",
"public_key", "key_id"}``). A root key is kept offline; its ``.pub`` is pinned on devices.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgectl.errors import UsageError
from edgectl.trust_cmds import SubParsers
from model_store import Role, key_id, load_public_key, write_keypair

#: file name endings that say ``--out`` was given a key file, not its directory
_KEY_FILE_SUFFIXES = (".key", ".pem", ".pub")


def _cmd_create(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix in _KEY_FILE_SUFFIXES and not out.is_dir():
        raise UsageError(
            f"--out is the directory for the key pair (NAME.key and NAME.pub), and {out} "
            f"looks like a file: use --out {out.parent} --name {out.stem}"
        )
    key, pub = write_keypair(out, args.name or args.role)
    kid = key_id(load_public_key(pub))
    if args.json:
        answer = {"role": args.role, "private_key": str(key), "public_key": str(pub)}
        print(json.dumps({**answer, "key_id": kid}, indent=2))
        return 0
    print(f"private key: {key}\npublic key:  {pub}")
    print(f"{args.role} key id: {kid}")
    if args.role == Role.ROOT:
        print("keep the root private key offline; pin the .pub on devices")
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``keys create``."""
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
    create.add_argument("--json", action="store_true", help="print the files and key id as JSON")
    create.set_defaults(handler=_cmd_create)
