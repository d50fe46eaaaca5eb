"""``edgectl fleets list|show``: the fleets devices belong to, with their backend pins.

``fleets list`` is one row per fleet (devices, pins, created); ``fleets show NAME`` the
fleet's fields, its pins for every model and for single models. ``--json`` prints the
control plane's objects (``GET /api/v1/fleets``, ``GET /api/v1/fleets/NAME``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from edgectl.connect import connect
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers
from edgectl.words import plural


def _model_pins(fleet: Mapping[str, Any]) -> str:
    """``det=openvino:CPU:f32, ocr=...`` sorted by model; ``-`` for none."""
    pins = fleet.get("model_pins") or {}
    return ", ".join(f"{m}={b}" for m, b in sorted(pins.items())) or "-"


def render_fleets(fleets: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            f.get("name"),
            f.get("device_count", 0),
            f.get("pinned_backend") or "-",
            _model_pins(f),
            when(f.get("created_at")),
        ]
        for f in fleets
    ]
    return render(["fleet", "devices", "pin", "model pins", "created"], rows)


def render_fleet(fleet: Mapping[str, Any]) -> str:
    """``fleets show``: one ``field: value`` line each."""
    fields = [
        ("fleet", fleet.get("name")),
        ("devices", plural(int(fleet.get("device_count") or 0), "device")),
        ("pin", fleet.get("pinned_backend") or "-"),
        ("model pins", _model_pins(fleet)),
        ("created", when(fleet.get("created_at"))),
    ]
    width = max(len(k) for k, _ in fields)
    name = fleet.get("name")
    hint = f"its devices: edgectl devices list --fleet {name}"
    return "\n".join([*(f"{k + ':':<{width + 1}} {v}" for k, v in fields), "", hint])


def _cmd_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        fleets = client.fleets()
    if args.json:
        print(json.dumps(fleets, indent=2))
    elif not fleets:
        print("no fleets yet: a device joins one when it enrolls (edgectl devices enroll)")
    else:
        print(render_fleets(fleets))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        fleet = client.fleet(args.name)
    print(json.dumps(fleet, indent=2) if args.json else render_fleet(fleet))
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``fleets list|show``."""
    fleets = sub.add_parser("fleets", help="fleets: their devices and backend pins")
    cmds = fleets.add_subparsers(dest="fleets_cmd", required=True)
    list_ = cmds.add_parser("list", help="list fleets")
    list_.add_argument("--json", action="store_true", help="print the API objects")
    list_.set_defaults(handler=_cmd_list)
    show = cmds.add_parser("show", help="one fleet: devices and pins")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print the API object")
    show.set_defaults(handler=_cmd_show)
