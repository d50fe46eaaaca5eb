"""``edgectl``: the operator CLI. Errors are one line on stderr; see errors.py for exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edgectl import bundle_cmds, pin_cmds, trust_cmds
from edgectl.client import DEFAULT_URL, ControlPlaneClient
from edgectl.errors import EdgectlError, UsageError
from edgectl.push import default_key_path, is_signed_bundle, push_model
from edgectl.table import render
from edgectl.wait import target_statuses, wait_for_deployment
from model_store import ModelStoreError, Role, key_id, load_public_key, write_keypair

URL_ENV = "EDGECTL_URL"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgectl", description="Operate an EdgeFleet fleet.")
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"control-plane URL (env {URL_ENV}, default {DEFAULT_URL})",
    )
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

    push = sub.add_parser("push", help="push artifacts").add_subparsers(
        dest="push_cmd", required=True
    )
    model = push.add_parser("model", help="build, sign, upload and deploy a model bundle")
    model.add_argument(
        "path",
        type=Path,
        help="a .onnx file or a directory with one; a signed bundle directory (holding "
        "model.sig and edgefleet.json) is pushed as is, without re-signing",
    )
    model.add_argument("--name", required=True)
    model.add_argument("--version", required=True)
    model.add_argument("--fleet", help="deploy to this fleet (omit to only upload)")
    model.add_argument(
        "--trust", type=Path, help="verify the bundle against this trust document first"
    )
    model.add_argument(
        "--key",
        type=Path,
        default=None,
        help="release private key (env EDGECTL_KEY, default ~/.config/edgefleet/keys/release.key)",
    )
    model.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait up to SECONDS for every target device to activate it",
    )
    bundle_cmds.add_extra_option(model)
    bundle_cmds.add_selection_options(model)
    model.add_argument("--json", action="store_true", help="print the result as JSON")

    devices = sub.add_parser("devices", help="devices").add_subparsers(
        dest="devices_cmd", required=True
    )
    dev_list = devices.add_parser("list", help="list devices")
    dev_list.add_argument("--json", action="store_true")

    pin_cmds.add_commands(sub)

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


def _cmd_push_model(args: argparse.Namespace) -> int:
    key_path = (args.key or default_key_path()).expanduser()
    with ControlPlaneClient(args.url) as client:
        result = push_model(
            client,
            args.path,
            name=args.name,
            version=args.version,
            fleet=args.fleet,
            key_path=key_path,
            trust_path=args.trust,
            extra_files=args.extra,
            selection=bundle_cmds.selection_of(args),
        )
        deployment = result.deployment
        if deployment is not None and args.wait > 0:
            deployment = wait_for_deployment(client, int(deployment["id"]), timeout=args.wait)
    if args.json:
        print(json.dumps({"version": result.version, "deployment": deployment}, indent=2))
    else:
        print(
            f"{args.name} {args.version}: bundle {result.version.get('bundle_digest', '')[:12]} "
            + ("uploaded as signed" if is_signed_bundle(args.path) else "signed and uploaded")
        )
        if deployment is not None:
            targets = deployment.get("targets", [])
            print(f"deployment {deployment['id']} to fleet {args.fleet}: {len(targets)} device(s)")
    if deployment is not None and args.wait > 0:
        _check_settled(deployment, args.wait, show=not args.json)
    return 0


def _check_settled(deployment: dict[str, Any], waited: float, *, show: bool) -> None:
    """Print each target's outcome; one error line if any did not activate."""
    statuses = target_statuses(deployment)
    reasons = {str(t["device_id"]): t.get("reason") for t in deployment.get("targets", [])}
    for device, status in sorted(statuses.items()) if show else ():
        print(f"  {device}: {status}" + (f" ({reasons[device]})" if reasons.get(device) else ""))
    bad = sorted(d for d, s in statuses.items() if s != "activated")
    if bad:
        first = bad[0]
        why = reasons.get(first) or (
            f"still {statuses[first]} after {waited:g}s" if statuses[first] != "failed" else ""
        )
        raise EdgectlError(
            f"deployment {deployment['id']}: {len(bad)} of {len(statuses)} device(s) did not "
            f"activate; first: {first}: {why}".rstrip(": ")
        )


def _cmd_devices_list(args: argparse.Namespace) -> int:
    with ControlPlaneClient(args.url) as client:
        devices = client.devices()
    if args.json:
        print(json.dumps(devices, indent=2))
        return 0
    rows = [
        [
            d.get("id"),
            d.get("fleet"),
            "online" if d.get("online") else "offline",
            d.get("status"),
            f"{d.get('active_model') or '-'} {d.get('active_version') or ''}".strip(),
            d.get("backend") or "-",
            d.get("last_report_at") or "-",
        ]
        for d in devices
    ]
    print(render(["device", "fleet", "link", "status", "model", "backend", "last report"], rows))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edgectl.demo import run_demo  # heavy imports (onnxruntime) only when needed

    return run_demo(keep=args.keep, workdir=args.workdir)


_COMMANDS = {
    ("keys", "create"): _cmd_keys_create,
    ("push", "model"): _cmd_push_model,
    ("devices", "list"): _cmd_devices_list,
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
