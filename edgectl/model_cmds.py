"""``edgectl models list|show|undeploy``: registered models, their versions, digests and
variants; ``undeploy`` (:mod:`edgectl.undeploy_cmds`) removes one from a fleet."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from edgectl.connect import connect
from edgectl.progress import format_bytes
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers
from edgectl.undeploy_cmds import add_undeploy


def _variant(name: object, framework: object) -> str:
    return f"{name} ({framework})" if framework else str(name)


def _variants(version: Mapping[str, Any]) -> str:
    """``default (onnx), openvino (openvino)``: the version's own bundle, then its variants."""
    names = [_variant("default", version.get("framework"))]
    for v in version.get("variants") or []:
        names.append(_variant(v.get("variant"), v.get("framework")))
    return ", ".join(names)


def _size(version: Mapping[str, Any]) -> int:
    files = [*(version.get("files") or []), version.get("signature") or {}]
    return sum(int(f.get("size") or 0) for f in files)


def render_model(model: Mapping[str, Any]) -> str:
    """``models show``: one row per version."""
    rows = [
        [
            v.get("version"),
            str(v.get("bundle_digest") or "")[:12],
            str(v.get("key_id") or "-")[:16],
            len(v.get("files") or []),
            format_bytes(_size(v)),
            _variants(v),
            when(v.get("created_at")),
        ]
        for v in model.get("versions") or []
    ]
    headers = ["version", "digest", "key", "files", "size", "variants", "created"]
    return f"model {model.get('name')}\n" + render(headers, rows)


def _cmd_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        models = client.models()
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    rows: list[list[object]] = []
    for m in models:
        versions = m.get("versions") or []
        latest = versions[-1] if versions else {}
        rows.append(
            [
                m.get("name"),
                len(versions),
                latest.get("version") or "-",
                str(latest.get("bundle_digest") or "-")[:12],
                when(latest.get("created_at") or m.get("created_at")),
            ]
        )
    print(render(["model", "versions", "latest", "digest", "created"], rows))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        model = client.model(args.name)
    print(json.dumps(model, indent=2) if args.json else render_model(model))
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``models list|show``."""
    models = sub.add_parser("models", help="registered models")
    cmds = models.add_subparsers(dest="models_cmd", required=True)
    list_ = cmds.add_parser("list", help="list models")
    list_.add_argument("--json", action="store_true", help="print the API objects")
    list_.set_defaults(handler=_cmd_list)
    show = cmds.add_parser("show", help="a model's versions, digests and variants")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print the API object")
    show.set_defaults(handler=_cmd_show)
    add_undeploy(cmds)
