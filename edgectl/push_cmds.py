"""``edgectl push model``: sign, upload (with a progress bar), start a rollout, watch it.

Every option is checked before anything is built or sent (exit 2). Without ``--fleet``
the bundle is only uploaded (and registered, as ``--variant`` of an existing version if
given). With ``--fleet`` a rollout starts (``POST /api/v1/rollouts``) to the fleet's
devices matching ``--selector``: a canary (``--canary N|P%``), then ``--batches K`` with
``--wait DURATION`` between, aborted past ``--max-failures P%`` and gated on each device's
latency and error rate against its own baseline (``--gate-*``). ``--shadow DURATION``
runs the new version beside the serving one on ``--shadow-sample P%`` of live requests
before each device switches, gated on ``--gate-agreement P%`` and on the latency gate.
The live view follows it
until it completes, aborts or pauses; ``--detach`` returns at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgectl import bundle_cmds
from edgectl.connect import connect
from edgectl.durations import parse_duration
from edgectl.errors import UsageError
from edgectl.input_hint_args import input_hints_of
from edgectl.progress import UploadProgress
from edgectl.push import default_key_path, is_signed_bundle, push_model
from edgectl.rollout_cmds import add_watch_options, watch, watch_timeout
from edgectl.trust_cmds import SubParsers
from edgectl.values import parse_canary, parse_percent, parse_positive_int, parse_selector

#: Options of the health gate, and all those that shape a rollout (they need --fleet).
GATE_OPTIONS = (
    "gate_latency",
    "gate_latency_floor",
    "gate_errors",
    "gate_action",
    "gate_min_requests",
    "gate_no_traffic",
)
#: Options of the shadow period (``--shadow-sample`` and ``--gate-agreement`` need ``--shadow``).
SHADOW_OPTIONS = ("shadow", "shadow_sample", "gate_agreement")
_ROLLOUT_OPTIONS = (
    "selector",
    "canary",
    "batches",
    "wait",
    "max_failures",
    "min_finished",
    "install_timeout",
    "deploy_priority",
    *GATE_OPTIONS,
    *SHADOW_OPTIONS,
)


def add_batch_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options that say which devices a rollout takes and in what batches (``push
    model`` and ``models undeploy``): --selector, --canary, --batches, --wait,
    --max-failures."""
    parser.add_argument(
        "--selector", metavar="K=V,...", help="only the fleet's devices with these labels"
    )
    parser.add_argument(
        "--canary", metavar="N|P%", help="first a canary batch of N devices or P%% of them"
    )
    parser.add_argument("--batches", metavar="K", help="then the rest in K batches (default 1)")
    parser.add_argument(
        "--wait", metavar="DURATION", help="wait between batches, e.g. 30s, 5m (default 0)"
    )
    parser.add_argument(
        "--max-failures",
        metavar="P%",
        help="abort when more than P%% of the finished devices failed",
    )


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _positive_duration(text: str, what: str) -> float:
    seconds = parse_duration(text, what=what)
    if seconds <= 0:
        raise UsageError(f"invalid {what} {text!r}: expected a duration above 0, e.g. 5m")
    return seconds


def _milliseconds(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("ms"))
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(f"invalid --gate-latency-floor {text!r}: expected milliseconds, e.g. 5")
    return value


def gate_of(args: argparse.Namespace) -> dict[str, Any]:
    """The ``strategy.gate`` keys the ``--gate-*`` options give (only those given)."""
    if args.no_gate:
        given = [_flag(o) for o in GATE_OPTIONS if getattr(args, o) is not None]
        if given:
            raise UsageError(f"--no-gate contradicts {', '.join(given)}")
        return {"enabled": False}
    gate: dict[str, Any] = {}
    if args.gate_latency is not None:
        gate["latency_pct"] = parse_percent(args.gate_latency, what="--gate-latency", maximum=None)
    if args.gate_latency_floor is not None:
        gate["latency_floor_ms"] = _milliseconds(args.gate_latency_floor)
    if args.gate_errors is not None:
        gate["error_rate_pct"] = parse_percent(args.gate_errors, what="--gate-errors")
    if args.gate_action is not None:
        gate["action"] = args.gate_action
    if args.gate_min_requests is not None:
        gate["min_requests"] = parse_positive_int(
            args.gate_min_requests, what="--gate-min-requests", minimum=0
        )
    if args.gate_no_traffic is not None:
        gate["no_traffic_timeout_s"] = _positive_duration(args.gate_no_traffic, "--gate-no-traffic")
    return gate


def shadow_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``strategy.shadow`` the ``--shadow*`` and ``--gate-agreement`` options give
    (None: no shadow period; a command without these options has none)."""
    if getattr(args, "shadow", None) is None:
        given = [_flag(o) for o in SHADOW_OPTIONS[1:] if getattr(args, o, None) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --shadow")
        return None
    shadow: dict[str, Any] = {"duration_s": _positive_duration(args.shadow, "--shadow")}
    if args.shadow_sample is not None:
        shadow["sample_pct"] = parse_percent(
            args.shadow_sample, what="--shadow-sample", allow_zero=False
        )
    if args.gate_agreement is not None:
        shadow["min_agreement_pct"] = parse_percent(args.gate_agreement, what="--gate-agreement")
    return shadow


def strategy_of(args: argparse.Namespace) -> dict[str, Any]:
    """The rollout ``strategy`` the options give (only the keys given: the control plane
    fills in its defaults). UsageError (one line) on a bad value."""
    strategy: dict[str, Any] = {}
    if args.canary is not None:
        strategy.update(parse_canary(args.canary))
    if args.batches is not None:
        strategy["batches"] = parse_positive_int(args.batches, what="--batches")
    if args.wait is not None:
        strategy["wait_s"] = parse_duration(args.wait, what="--wait")
    if args.max_failures is not None:
        strategy["max_failures_pct"] = parse_percent(args.max_failures, what="--max-failures")
    if args.min_finished is not None:
        strategy["min_finished"] = parse_positive_int(args.min_finished, what="--min-finished")
    if args.install_timeout is not None:
        strategy["install_timeout_s"] = _positive_duration(
            args.install_timeout, "--install-timeout"
        )
    gate = gate_of(args)
    if gate:
        strategy["gate"] = gate
    shadow = shadow_of(args)
    if shadow is not None:
        strategy["shadow"] = shadow
    return strategy


def _check_fleet_options(args: argparse.Namespace) -> None:
    if args.fleet is not None:
        return
    given = [_flag(o) for o in _ROLLOUT_OPTIONS if getattr(args, o) is not None]
    given += ["--no-gate"] if args.no_gate else []
    given += ["--detach"] if args.detach else []
    given += ["--timeout"] if args.timeout is not None else []
    if given:
        verb = "needs" if len(given) == 1 else "need"
        raise UsageError(
            f"{', '.join(given)} {verb} --fleet (without it the bundle is only uploaded)"
        )


def _cmd_push_model(args: argparse.Namespace) -> int:
    _check_fleet_options(args)
    selector = parse_selector(args.selector) if args.selector else None
    strategy = strategy_of(args)
    timeout = watch_timeout(args)
    key_path = (args.key or default_key_path()).expanduser()
    label = f"uploading {args.name} {args.version}"

    def progress(total: int) -> UploadProgress:
        return UploadProgress(
            total, label=label, stream=sys.stderr, enabled=None if not args.json else False
        )

    with connect(args) as client:
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
            serving=bundle_cmds.serving_of(args),
            input_hints=input_hints_of(args),
            variant=args.variant,
            selector=selector,
            strategy=strategy,
            progress=progress,
            priority=args.deploy_priority,
        )
        if not args.json:
            variant = f" variant {args.variant}" if args.variant else ""
            how = "uploaded as signed" if is_signed_bundle(args.path) else "signed and uploaded"
            digest = str(result.version.get("bundle_digest", ""))[:12]
            print(f"{args.name} {args.version}{variant}: bundle {digest} {how}")
        if result.rollout is None:
            if args.json:
                print(json.dumps({"version": result.version, "rollout": None}, indent=2))
            return 0
        return watch(
            client,
            result.rollout,
            as_json=args.json,
            detach=args.detach,
            timeout=timeout,
            json_of=lambda rollout: {"version": result.version, "rollout": rollout},
        )


def add_commands(sub: SubParsers) -> None:
    """Register ``push model``."""
    push = sub.add_parser("push", help="push artifacts").add_subparsers(
        dest="push_cmd", required=True
    )
    model = push.add_parser(
        "model",
        help="build, sign, upload a model bundle and roll it out",
        description="Sign (unless already signed) and upload a model bundle; with --fleet, "
        "roll it out batch by batch and watch it until it completes, aborts or pauses "
        "(Ctrl-C stops watching; the rollout goes on).",
    )
    model.add_argument(
        "path",
        type=Path,
        help="a .onnx file or a directory with one, or a pipeline spec NAME.pipeline.json "
        "(docs/bundles.md); a signed bundle directory (holding "
        "model.sig and edgefleet.json) is pushed as is, without re-signing",
    )
    model.add_argument("--name", required=True)
    model.add_argument("--version", required=True)
    model.add_argument(
        "--variant",
        metavar="NAME",
        help="register this bundle as another variant (e.g. openvino) of an existing version",
    )
    model.add_argument(
        "--trust", type=Path, help="verify the bundle against this trust document first"
    )
    model.add_argument(
        "--key",
        type=Path,
        default=None,
        help="release private key (env EDGECTL_KEY, default ~/.config/edgefleet/keys/release.key)",
    )
    bundle_cmds.add_extra_option(model)
    bundle_cmds.add_selection_options(model)
    bundle_cmds.add_serving_options(model)

    target = model.add_argument_group("rollout (needs --fleet)")
    target.add_argument("--fleet", help="roll out to this fleet (omit to only upload)")
    add_batch_options(target)
    target.add_argument(
        "--min-finished",
        metavar="M",
        help="... once at least M devices finished (default 1)",
    )
    target.add_argument(
        "--deploy-priority",
        choices=("high", "normal", "low"),
        help="the model's share of each device beside its other models (wins over the "
        "bundle's serving priority; default: the bundle's, else normal)",
    )
    target.add_argument(
        "--install-timeout",
        metavar="DURATION",
        help="a device still installing this long after its batch started failed (default 10m)",
    )

    gate = model.add_argument_group("health gate (each device against its own baseline)")
    gate.add_argument(
        "--gate-latency",
        metavar="P%",
        help="regression when p95 latency grows more than P%% (default 25%%)",
    )
    gate.add_argument(
        "--gate-latency-floor",
        metavar="MS",
        help="... and by more than MS milliseconds (default 5)",
    )
    gate.add_argument(
        "--gate-errors",
        metavar="P",
        help="regression when the error rate grows more than P points (default 1)",
    )
    gate.add_argument(
        "--gate-action",
        choices=["pause", "abort"],
        help="on a regression: pause (default), or abort and roll back",
    )
    gate.add_argument(
        "--gate-min-requests",
        metavar="N",
        help="judge a device after N requests on the new version (default 100)",
    )
    gate.add_argument(
        "--gate-no-traffic",
        metavar="DURATION",
        help="a device without N requests this long after activating passes (default 5m)",
    )
    gate.add_argument("--no-gate", action="store_true", help="no health gate")

    shadow = model.add_argument_group(
        "shadow period (the new version beside the serving one before each device switches)"
    )
    shadow.add_argument(
        "--shadow",
        metavar="DURATION",
        help="run the new version as a shadow this long first, e.g. 10m, 30s, 1h "
        "(default: no shadow period)",
    )
    shadow.add_argument(
        "--shadow-sample",
        metavar="P%",
        help="share of live requests copied to the shadow, in percent (default 10)",
    )
    shadow.add_argument(
        "--gate-agreement",
        metavar="P%",
        help="switch only if the shadow agreed on at least P%% of them; its latency is "
        "held to --gate-latency (default: not gated)",
    )
    add_watch_options(model)
    model.set_defaults(handler=_cmd_push_model)
