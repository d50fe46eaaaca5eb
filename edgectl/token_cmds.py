"""``edgectl tokens create|list|revoke``: API bearer tokens (needs an admin token).

``tokens create --name N --role admin|operator|viewer`` prints the new token once (the
control plane keeps only its hash); ``--json`` prints the whole answer, token included.
``tokens list`` shows every token by id, name, role and first characters, never the
token itself. ``tokens revoke ID`` stops a token working at once.
"""

from __future__ import annotations

import argparse
import json

from edgectl.connect import connect
from edgectl.table import render
from edgectl.trust_cmds import SubParsers

ROLES = ("admin", "operator", "viewer")


def _cmd_create(args: argparse.Namespace) -> int:
    with connect(args) as client:
        created = client.create_token(args.name, args.role)
    if args.json:
        print(json.dumps(created, indent=2))
        return 0
    print(f"token {created['id']} ({created['name']}, {created['role']}): {created['token']}")
    print("it is shown only now: store it safely (e.g. EDGECTL_TOKEN or the config file)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        tokens = client.tokens()
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    rows = [
        [
            t.get("id"),
            t.get("name"),
            t.get("role"),
            f"{t.get('prefix', '')}…",
            t.get("created_at"),
            t.get("last_used_at") or "-",
            "revoked" if t.get("revoked_at") else "active",
        ]
        for t in tokens
    ]
    print(render(["id", "name", "role", "prefix", "created", "last used", "state"], rows))
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    with connect(args) as client:
        revoked = client.revoke_token(args.id)
    if args.json:
        print(json.dumps(revoked, indent=2))
        return 0
    print(f"revoked token {revoked['id']} ({revoked['name']}, {revoked['role']})")
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``tokens create|list|revoke`` on the top-level subparsers."""
    tokens = sub.add_parser("tokens", help="API tokens (admin)").add_subparsers(
        dest="tokens_cmd", required=True
    )
    create = tokens.add_parser("create", help="create a token; it is printed once")
    create.add_argument("--name", required=True, help="what the token is for, e.g. ci")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--json", action="store_true", help="print the answer as JSON")
    create.set_defaults(handler=_cmd_create)
    list_ = tokens.add_parser("list", help="list tokens (never the tokens themselves)")
    list_.add_argument("--json", action="store_true", help="print the tokens as JSON")
    list_.set_defaults(handler=_cmd_list)
    revoke = tokens.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("id", type=int, metavar="ID", help="the token's id (tokens list)")
    revoke.add_argument("--json", action="store_true", help="print the answer as JSON")
    revoke.set_defaults(handler=_cmd_revoke)
