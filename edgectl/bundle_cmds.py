"""``edgectl bundle build|sign|verify``: OpenSSF model-signing bundles, offline.

``build`` makes an unsigned bundle directory (model files + ``edgefleet.json``), which
``edgectl bundle sign`` or upstream ``model_signing sign key DIR --signature
DIR/model.sig --private_key KEY`` can sign. ``sign`` writes ``model.sig``:

* ``bundle sign DIR --key KEY``: signs the directory DIR in place (every file in it, like
  upstream ``model_signing``); with ``--out OUT`` it copies DIR to OUT and signs the copy.
* ``bundle sign MODEL --key KEY --name N --version V --out OUT``: builds a bundle from a
  ``.onnx`` file or model directory into OUT first, then signs it.

A pipeline (``docs/bundles.md``) is built and signed the same way from its spec file,
``edgectl bundle build ocr.pipeline.json --name ocr --version 1.0 --out DIR`` (no
``--pin``/``--tolerance``: its steps' bundles carry those).

``build`` and ``sign`` (when building) take ``--pin KEY`` (a backend candidate key that
devices use instead of measuring), ``--tolerance X`` and ``--topk-agreement K`` (the
accuracy guard) and the input hints ``--input-shape/--input-range/--input-value``
(``edgectl.input_hint_args``): all go into ``edgefleet.json`` and so are covered by the
operator's signature.

``verify`` checks the trust document (against ``--root`` if given, else against its own
root role) and then the bundle against the release keys it certifies: exit 0 "valid: ...",
exit 1 "invalid: <reason>", exit 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgectl.errors import UsageError, VerificationError
from edgectl.input_hint_args import add_input_hint_options, input_hints_of
from edgectl.trust_cmds import SubParsers, verify_trust_file
from edgectl.words import plural
from model_store import (
    METADATA_FILENAME,
    BundleError,
    SignatureError,
    build_bundle,
    key_id,
    load_private_key,
    sign_bundle,
    verify_bundle,
    verify_bundle_trusted,
)
from protocol import Priority

logger = logging.getLogger(__name__)


def selection_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The bundle selection settings ``--pin``/``--tolerance``/``--topk-agreement`` give,
    or None."""
    chosen = {"pin": args.pin, "tolerance": args.tolerance, "topk": args.topk_agreement}
    return {k: v for k, v in chosen.items() if v is not None} or None


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}
_SIZE_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """``200MiB``, ``1.5GB``, ``4096`` -> bytes (argparse type; one-line error)."""
    number = text.strip().rstrip("bBiIkKmMgG")
    unit = text.strip()[len(number) :].upper()
    try:
        value = float(number)
    except ValueError:
        value = -1
    if unit not in _SIZE_UNITS or value <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 200MiB, 1GB, 4096)")
    return int(value * _SIZE_UNITS[unit])


def serving_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The bundle serving settings ``--priority``/``--concurrency``/``--threads``/
    ``--memory`` give (``model_store.BundleServing``), or None."""
    chosen = {
        "priority": getattr(args, "priority", None),
        "concurrency": getattr(args, "concurrency", None),
        "threads": getattr(args, "threads", None),
        "memory_bytes": getattr(args, "memory", None),
    }
    return {k: v for k, v in chosen.items() if v is not None} or None


def add_serving_options(parser: argparse.ArgumentParser) -> None:
    """How the model shares a device with others, signed with the bundle (``serving``)."""
    parser.add_argument(
        "--priority",
        choices=[p.value for p in Priority],
        help="its share of the device's CPU threads and requests beside other models "
        "(a deployment's own priority wins; devices default to normal)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="the most of its requests a device runs at once (default: its thread share)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads its backend runs with (default: its share of the device's cores)",
    )
    parser.add_argument(
        "--memory",
        type=parse_size,
        metavar="SIZE",
        help="memory it needs once loaded, e.g. 200MiB (devices check the set fits)",
    )


def _cmd_build(args: argparse.Namespace) -> int:
    build_bundle(
        args.path,
        args.out,
        name=args.name,
        version=args.version,
        extra_files=args.extra,
        selection=selection_of(args),
        serving=serving_of(args),
        input_hints=input_hints_of(args),
    )
    if args.json:
        answer = {"bundle": str(args.out), "name": args.name, "version": args.version}
        print(json.dumps({**answer, "signed": False}, indent=2))
        return 0
    print(
        f"built unsigned bundle {args.out} ({args.name} {args.version}); sign it with "
        f"'edgectl bundle sign {args.out} --key KEY' or 'model_signing sign key {args.out} "
        f"--signature {args.out}/model.sig --private_key KEY'"
    )
    return 0


def _copy_bundle(source: Path, out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise UsageError(f"output {out} already exists")
    try:
        shutil.copytree(source, out, symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise UsageError(f"cannot copy {source} to {out}: {exc}") from exc


def _cmd_sign(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise UsageError(f"not found: {args.path}")
    if not args.key.is_file():
        raise UsageError(f"signing key not found: {args.key}")
    key = load_private_key(args.key)
    building = args.name is not None or args.version is not None
    if args.extra and not building:
        raise UsageError("--extra is added when a bundle is built: give --name and --version")
    if (selection_of(args) is not None or input_hints_of(args)) and not building:
        raise UsageError(
            "--pin, --tolerance, --topk-agreement and --input-* are set when a bundle is "
            "built: give --name and --version"
        )
    if serving_of(args) is not None and not building:
        raise UsageError(
            "--priority, --concurrency, --threads and --memory are set when a bundle is "
            "built: give --name and --version"
        )
    if building:
        if args.name is None or args.version is None or args.out is None:
            raise UsageError("building a bundle to sign needs --name, --version and --out")
        build_bundle(
            args.path,
            args.out,
            name=args.name,
            version=args.version,
            extra_files=args.extra,
            selection=selection_of(args),
            serving=serving_of(args),
            input_hints=input_hints_of(args),
        )
        target = args.out
    elif not args.path.is_dir():
        raise UsageError(
            f"{args.path} is not a directory: give --name, --version and --out to build a "
            "bundle from a model file"
        )
    elif args.out is not None:
        _copy_bundle(args.path, args.out)
        target = args.out
    else:
        target = args.path
    sign_bundle(target, key)
    manifest = verify_bundle(target, [key.public_key()])
    signer = key_id(key.public_key())
    if args.json:
        answer = {"bundle": str(target), "files": [f.path for f in manifest.files]}
        answer |= {"bundle_digest": manifest.bundle_digest, "key_id": signer}
        print(json.dumps(answer, indent=2))
    else:
        print(
            f"signed {target}: {plural(len(manifest.files), 'file')}, bundle digest "
            f"{manifest.bundle_digest}, release key {signer[:16]}"
        )
    if not (target / METADATA_FILENAME).is_file():
        print(
            f"note: {target} has no {METADATA_FILENAME}; 'edgectl push' needs one "
            "(build it with 'edgectl bundle build' or --name/--version)",
            file=sys.stderr,
        )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if not args.path.is_dir():
        raise UsageError(f"bundle directory not found: {args.path}")
    now = datetime.now(UTC)
    trust, against = verify_trust_file(args.trust, args.root, now)
    try:
        manifest = verify_bundle_trusted(args.path, trust, now=now)
    except (SignatureError, BundleError) as exc:
        raise VerificationError(f"invalid: {exc}") from exc
    if args.json:
        answer = {"valid": True, "name": manifest.subject_name}
        answer |= {"files": [f.path for f in manifest.files]}
        answer |= {"bundle_digest": manifest.bundle_digest, "key_id": manifest.key_id}
        answer |= {"trust_version": trust.version, "trust_verified_against": against}
        print(json.dumps(answer, indent=2))
        return 0
    print(
        f"valid: {manifest.subject_name}: {plural(len(manifest.files), 'file')}, bundle "
        f"digest {manifest.bundle_digest}, signed by release key {manifest.key_id[:16]}; "
        f"trust document version {trust.version} verified against {against}"
    )
    return 0


def add_extra_option(parser: argparse.ArgumentParser) -> None:
    """``--extra FILE`` (repeatable): files added to the bundle when it is built."""
    parser.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="add a file (labels, bootstrap.npz for the health gate, ...); repeatable",
    )


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """``--pin KEY`` and ``--tolerance X``: backend selection settings signed with the bundle."""
    parser.add_argument(
        "--pin",
        metavar="KEY",
        help="backend devices use for this bundle instead of measuring, as "
        "runtime:device:precision (e.g. openvino:CPU:f32)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        metavar="X",
        help="accuracy guard: largest max abs error against the fp32 reference, as a "
        "fraction of its max abs value (0 < X <= 1; devices default to 0.01)",
    )
    parser.add_argument(
        "--topk-agreement",
        type=int,
        metavar="K",
        help="accuracy guard: classifier-like outputs ([batch, classes]) must also rank the "
        "reference's top-K classes first (1 <= K <= 100; devices default to no such check)",
    )
    add_input_hint_options(parser)


def add_commands(sub: SubParsers) -> None:
    """Register ``bundle build|sign|verify`` on the top-level subparsers."""
    bundle = sub.add_parser("bundle", help="build, sign and verify model bundles").add_subparsers(
        dest="bundle_cmd", required=True
    )
    build = bundle.add_parser("build", help="build an unsigned bundle directory")
    build.add_argument(
        "path",
        type=Path,
        help="a .onnx file or a directory with one, or a pipeline spec NAME.pipeline.json",
    )
    build.add_argument("--name", required=True)
    build.add_argument("--version", required=True)
    build.add_argument("--out", type=Path, required=True, help="new bundle directory")
    add_extra_option(build)
    add_selection_options(build)
    add_serving_options(build)
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.set_defaults(handler=_cmd_build)

    sign = bundle.add_parser("sign", help="write model.sig (OpenSSF model signing)")
    sign.add_argument("path", type=Path, help="bundle directory, or a model with --name/--version")
    sign.add_argument("--key", type=Path, required=True, help="release private key")
    sign.add_argument("--out", type=Path, help="sign a copy / the built bundle here")
    sign.add_argument("--name", help="build a bundle from PATH first, with this name")
    sign.add_argument("--version", help="... and this version")
    add_extra_option(sign)
    add_selection_options(sign)
    add_serving_options(sign)
    sign.add_argument("--json", action="store_true", help="print the result as JSON")
    sign.set_defaults(handler=_cmd_sign)

    verify = bundle.add_parser("verify", help="verify a bundle offline against a trust document")
    verify.add_argument("path", type=Path, help="bundle directory holding model.sig")
    verify.add_argument("--trust", type=Path, required=True, help="trust document file")
    verify.add_argument("--root", type=Path, help="pinned root public key to verify it against")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_cmd_verify)
