"""``edgectl trust init|update|show|publish``: the root-signed trust document.

The root key signs which key ids hold the ``root``, ``release`` and ``control-plane``
roles (see ``model_store.trust``). ``init`` writes version 1; ``update`` writes the next
version, signed by the current root and, when ``--new-root-key`` rotates the root, by the
new one too; ``show`` prints a document and checks it is signed by its own root role;
``publish`` sends it to the control plane, which serves it to the agents.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from edgectl.client import ControlPlaneClient
from edgectl.errors import UsageError, VerificationError
from model_store import (
    Role,
    SignatureError,
    TrustDocument,
    TrustError,
    build_trust_document,
    key_id,
    load_initial_trust,
    load_private_key,
    load_public_key,
    open_envelope,
    parse_unverified_trust,
    verify_trust_update,
)
from protocol import TRUST_PAYLOAD_TYPE

MAX_TRUST_FILE_BYTES = 4 * 1024 * 1024
_KEY_ID = re.compile(r"[0-9a-f]{64}")
SubParsers = argparse._SubParsersAction


def read_trust_file(path: Path) -> bytes:
    """A trust document's bytes; ``UsageError`` if missing, unreadable or too large."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUST_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise UsageError(f"trust document not found: {path}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read trust document {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise UsageError(f"trust document {path} is larger than {MAX_TRUST_FILE_BYTES} bytes")
    return data


def self_signed_roots(doc: TrustDocument) -> frozenset[str]:
    """Ids of ``doc``'s own root keys that sign it; ``VerificationError`` if none does."""
    try:
        _, signed_by = open_envelope(doc.envelope, TRUST_PAYLOAD_TYPE, doc.keys_for(Role.ROOT))
    except SignatureError as exc:
        raise VerificationError(
            f"trust document version {doc.version} is not signed by its own root role: {exc}"
        ) from exc
    return signed_by


def verify_trust_file(
    path: Path, root_pub: Path | None, now: datetime
) -> tuple[TrustDocument, str]:
    """Verify a trust file against ``root_pub``, else against its own root role.

    Returns the document and a phrase saying what it was checked against.
    ``VerificationError`` if it does not verify or has expired.
    """
    raw = read_trust_file(path)
    try:
        if root_pub is not None:
            root = load_public_key(root_pub)
            doc = load_initial_trust(raw, [root], now=now)
            return doc, f"the pinned root key {key_id(root)[:16]}"
        unverified = parse_unverified_trust(raw)
        doc = load_initial_trust(raw, list(unverified.keys_for(Role.ROOT).values()), now=now)
    except TrustError as exc:
        raise VerificationError(f"invalid: {exc}") from exc
    return doc, "its own root role (no --root given: pin one with --root ROOT.pub)"


def key_ref(value: str) -> str:
    """A key id, given as 64 hex digits or as a public key file."""
    if _KEY_ID.fullmatch(value):
        return value
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{value!r} is neither a key id (64 hex digits) nor a public key file")
    return key_id(load_public_key(path))


def _expiry(days: int) -> datetime:
    if not 1 <= days <= 3660:
        raise UsageError(f"--expires-days must be between 1 and 3660, got {days}")
    return datetime.now(UTC) + timedelta(days=days)


def _write_new(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise UsageError(f"{path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def describe(doc: TrustDocument) -> dict[str, Any]:
    """A JSON-able summary of a trust document."""
    return {
        "version": doc.version,
        "expires": doc.expires.isoformat().replace("+00:00", "Z"),
        "expired": doc.expires <= datetime.now(UTC),
        "roles": {role.value: sorted(doc.roles[role]) for role in Role},
        "revoked": sorted(doc.revoked),
    }


def _print_summary(doc: TrustDocument) -> None:
    info = describe(doc)
    expired = " (EXPIRED)" if info["expired"] else ""
    print(f"trust document version {info['version']}, expires {info['expires']}{expired}")
    for role, ids in [*info["roles"].items(), ("revoked", info["revoked"])]:
        print(f"  {role + ':':<15}{', '.join(ids) or '-'}")


def _print_written(args: argparse.Namespace, doc: TrustDocument, *, rotated: bool = False) -> None:
    """What ``init`` and ``update`` print: the file written and the document's summary."""
    if args.json:
        print(
            json.dumps({"file": str(args.out), "root_rotated": rotated, **describe(doc)}, indent=2)
        )
        return
    print(f"wrote {args.out}" + (" (root rotated)" if rotated else ""))
    _print_summary(doc)


def _cmd_init(args: argparse.Namespace) -> int:
    root = load_private_key(args.root_key)
    doc = build_trust_document(
        version=1,
        expires=_expiry(args.expires_days),
        roots=[root.public_key()],
        releases=[load_public_key(p) for p in args.release],
        control_planes=[load_public_key(p) for p in args.control_plane],
        device_cas=[load_public_key(p) for p in args.device_ca],
        signers=[root],
    )
    _write_new(args.out, doc.raw())
    _print_written(args, doc)
    return 0


def _role_keys(
    current: TrustDocument, role: Role, add: Iterable[Path], drop: set[str]
) -> list[ec.EllipticCurvePublicKey]:
    keys = {k: v for k, v in current.keys_for(role).items() if k not in drop}
    for path in add:
        key = load_public_key(path)
        keys[key_id(key)] = key
    return list(keys.values())


def _cmd_update(args: argparse.Namespace) -> int:
    current = parse_unverified_trust(read_trust_file(args.current))
    self_signed_roots(current)
    root = load_private_key(args.root_key)
    root_id = key_id(root.public_key())
    if root_id not in current.keys_for(Role.ROOT):
        raise UsageError(
            f"--root-key {root_id[:16]} is not a root key of version {current.version}"
        )
    signers = [root]
    roots = dict(current.keys_for(Role.ROOT))
    if args.new_root_key is not None:
        new_root = load_private_key(args.new_root_key)
        del roots[root_id]
        roots[key_id(new_root.public_key())] = new_root.public_key()
        signers.append(new_root)
    revoke = {key_ref(v) for v in args.revoke}
    removals = {
        Role.RELEASE: args.remove_release,
        Role.CONTROL_PLANE: args.remove_control_plane,
        Role.DEVICE_CA: args.remove_device_ca,
    }
    drop: dict[Role, set[str]] = {}
    for role, refs in removals.items():
        drop[role] = {key_ref(v) for v in refs}
        for kid in sorted(drop[role] - set(current.keys_for(role))):
            raise UsageError(
                f"key {kid[:16]} does not hold the {role} role in version {current.version}"
            )
    doc = build_trust_document(
        version=current.version + 1,
        expires=_expiry(args.expires_days),
        roots=[k for kid, k in roots.items() if kid not in revoke],
        releases=_role_keys(current, Role.RELEASE, args.add_release, drop[Role.RELEASE] | revoke),
        control_planes=_role_keys(
            current, Role.CONTROL_PLANE, args.add_control_plane, drop[Role.CONTROL_PLANE] | revoke
        ),
        device_cas=_role_keys(
            current, Role.DEVICE_CA, args.add_device_ca, drop[Role.DEVICE_CA] | revoke
        ),
        revoked=current.revoked | revoke,
        signers=signers,
    )
    verify_trust_update(current, doc.raw(), now=datetime.now(UTC))
    _write_new(args.out, doc.raw())
    _print_written(args, doc, rotated=args.new_root_key is not None)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    doc = parse_unverified_trust(read_trust_file(args.file))
    try:
        signed_by, problem = self_signed_roots(doc), None
    except VerificationError as exc:
        signed_by, problem = frozenset(), exc
    if args.json:
        print(json.dumps({**describe(doc), "signed_by": sorted(signed_by)}, indent=2))
    else:
        _print_summary(doc)
        if signed_by:
            print(f"  {'signed by:':<15}{', '.join(sorted(signed_by))} (its own root role)")
    if problem is not None:
        raise problem
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    raw = read_trust_file(args.file)
    doc = parse_unverified_trust(raw)
    self_signed_roots(doc)
    with ControlPlaneClient(args.url, token=args.token) as client:
        answer = client.publish_trust(raw)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"published trust document version {doc.version} to {args.url}")
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``trust init|update|show|publish`` on the top-level subparsers."""
    trust = sub.add_parser("trust", help="the root-signed trust document").add_subparsers(
        dest="trust_cmd", required=True
    )
    init = trust.add_parser("init", help="write trust document version 1")
    init.add_argument("--root-key", type=Path, required=True, help="root private key")
    init.add_argument("--release", type=Path, action="append", required=True, metavar="PUB")
    init.add_argument("--control-plane", type=Path, action="append", required=True, metavar="PUB")
    init.add_argument(
        "--device-ca",
        type=Path,
        action="append",
        default=[],
        metavar="PUB",
        help="the control plane's device CA public key (issues device certificates)",
    )
    init.add_argument(
        "--expires-days", type=int, default=365, help="valid this many days (default: 365)"
    )
    init.add_argument("--out", type=Path, required=True, help="the new trust document file")
    init.add_argument("--json", action="store_true", help="print the document's summary as JSON")
    init.set_defaults(handler=_cmd_init)

    upd = trust.add_parser("update", help="write the next version (rotate, add, revoke keys)")
    upd.add_argument("current", type=Path, help="the current trust document")
    upd.add_argument("--root-key", type=Path, required=True, help="a current root private key")
    upd.add_argument("--new-root-key", type=Path, help="rotate: the new root private key")
    for flag in ("--add-release", "--add-control-plane", "--add-device-ca"):
        upd.add_argument(flag, type=Path, action="append", default=[], metavar="PUB")
    for flag in ("--remove-release", "--remove-control-plane", "--remove-device-ca", "--revoke"):
        upd.add_argument(flag, action="append", default=[], metavar="KEYID|PUB")
    upd.add_argument(
        "--expires-days", type=int, default=365, help="valid this many days (default: 365)"
    )
    upd.add_argument("--out", type=Path, required=True, help="the new version's file")
    upd.add_argument("--json", action="store_true", help="print the document's summary as JSON")
    upd.set_defaults(handler=_cmd_update)

    show = trust.add_parser("show", help="print a trust document")
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(handler=_cmd_show)

    publish = trust.add_parser("publish", help="send a trust document to the control plane")
    publish.add_argument("file", type=Path)
    publish.add_argument("--json", action="store_true", help="print the control plane's answer")
    publish.set_defaults(handler=_cmd_publish)
