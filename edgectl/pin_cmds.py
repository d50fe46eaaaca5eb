"""``edgectl pin set|clear``: operator backend pins on a fleet or a device.

``pin set --fleet F KEY`` / ``pin set --device D KEY`` pins the backend candidate ``KEY``
(``runtime:device:precision``, e.g. ``openvino:CPU:f32``): devices use it instead of
measuring. A device's pin wins over its fleet's. ``pin clear --fleet F`` / ``--device D``
removes it. The control plane re-issues the affected devices' signed commands at once;
the command prints which. A malformed key is refused here (exit 2) before the control
plane is contacted; an unknown fleet or device is refused by it (exit 1).
"""

from __future__ import annotations

import argparse
import json
import re

from edgectl.client import ControlPlaneClient
from edgectl.errors import UsageError
from edgectl.trust_cmds import SubParsers
from protocol import BACKEND_KEY_MAX, BACKEND_KEY_PATTERN

_KEY = re.compile(BACKEND_KEY_PATTERN)


def check_backend_key(key: str) -> str:
    """``key`` if it is a backend candidate key, else UsageError (one line)."""
    if len(key) > BACKEND_KEY_MAX or _KEY.fullmatch(key) is None:
        raise UsageError(
            f"invalid backend {key!r}: expected runtime:device:precision, e.g. "
            "openvino:CPU:f32 or onnxruntime:CPUExecutionProvider:f32"
        )
    return key


def _scope(args: argparse.Namespace) -> tuple[str, str, str]:
    if args.fleet is not None:
        return "fleets", args.fleet, f"fleet {args.fleet}"
    return "devices", args.device, f"device {args.device}"


def _apply(args: argparse.Namespace, backend: str | None) -> int:
    scope, name, shown = _scope(args)
    with ControlPlaneClient(args.url, token=args.token) as client:
        result = client.set_pin(scope, name, backend)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    reissued = [str(d) for d in result.get("reissued", [])]
    what = f"pinned {shown} to {backend}" if backend else f"removed the backend pin of {shown}"
    sent = f"new command for {len(reissued)} device(s)"
    print(f"{what}; {sent}" + (f": {', '.join(reissued)}" if reissued else ""))
    return 0


def _cmd_set(args: argparse.Namespace) -> int:
    return _apply(args, check_backend_key(args.backend))


def _cmd_clear(args: argparse.Namespace) -> int:
    return _apply(args, None)


def _target(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fleet", help="every device of this fleet (a device pin wins)")
    group.add_argument("--device", help="this device")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_commands(sub: SubParsers) -> None:
    """Register ``pin set|clear`` on the top-level subparsers."""
    pin = sub.add_parser("pin", help="pin a backend on a fleet or device").add_subparsers(
        dest="pin_cmd", required=True
    )
    set_ = pin.add_parser("set", help="pin a backend: devices use it instead of measuring")
    _target(set_)
    set_.add_argument("backend", metavar="KEY", help="runtime:device:precision")
    set_.set_defaults(handler=_cmd_set)
    clear = pin.add_parser("clear", help="remove a pin: devices measure again")
    _target(clear)
    clear.set_defaults(handler=_cmd_clear)
