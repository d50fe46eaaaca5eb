"""``edgectl pin set|clear``: operator backend pins on a fleet or a device.

``pin set --fleet F KEY`` / ``pin set --device D KEY`` pins the backend candidate ``KEY``
(``runtime:device:precision``, e.g. ``openvino:CPU:f32``): devices use it instead of
measuring. A device's pin wins over its fleet's. ``pin clear --fleet F`` / ``--device D``
removes it. ``--model M`` pins (or clears) the backend of model ``M`` only, over the
pin for every model of the same fleet or device (a device's pins win over its fleet's;
see ``controlplane.pin_rules``); its answers are that model's. The control plane
re-issues the affected devices' signed commands at once;
the command prints which. ``pin set`` then waits for each online device's answer (as
``push`` waits for a rollout), up to ``--timeout`` (default 1m; ``--no-wait`` returns at
once) and prints it: ``honoured``, or ``not honoured`` with why (exit 1); online devices
still silent at the timeout exit 5; offline ones get the pin when they reconnect. A
malformed key is refused here (exit 2) before the control plane is contacted; an unknown
fleet or device is refused by it (exit 1).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edgectl.client import ControlPlaneClient
from edgectl.device_cmds import pin_answer
from edgectl.durations import format_duration, parse_duration
from edgectl.errors import PinNotHonoured, UsageError, WatchTimeout
from edgectl.trust_cmds import SubParsers
from edgectl.words import plural
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


#: How long ``pin set`` waits for the devices' answers unless ``--timeout`` says.
DEFAULT_WAIT_S = 60.0


def pin_of(device: Mapping[str, Any], model: str | None = None) -> dict[str, Any]:
    """The pin the device view shows for ``model`` (its ``models[].pin``; {} if it does
    not serve the model), or for every model (its ``pin``)."""
    if model is None:
        return dict(device.get("pin") or {})
    for entry in device.get("models") or []:
        if entry.get("name") == model:
            return dict(entry.get("pin") or {})
    return {}


def _waiting(device: Mapping[str, Any], model: str | None) -> bool:
    """Its new command is unprocessed (for ``model``: also while it does not show it)."""
    if device.get("online") and model is not None and not pin_of(device, model):
        return int(device.get("reported_generation") or 0) < int(device.get("generation") or 0)
    return bool(device.get("online")) and pin_of(device, model).get("state") == "waiting"


def wait_for_answers(
    fetch: Callable[[], Sequence[Mapping[str, Any]]],
    device_ids: Sequence[str],
    *,
    timeout: float,
    model: str | None = None,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Poll ``fetch`` (one request for the devices: a fleet's, or the one) until every
    online one of ``device_ids`` answered its new command's pin (or ``timeout`` passes);
    their latest views, by id."""
    start = clock()
    wanted = set(device_ids)
    while True:
        latest = {str(d.get("id")): dict(d) for d in fetch() if d.get("id") in wanted}
        done = all(not _waiting(d, model) for d in latest.values())
        if done or clock() - start >= timeout:
            return {d: latest[d] for d in device_ids if d in latest}
        sleep(interval)


def answer_line(device: Mapping[str, Any], model: str | None = None) -> str:
    """``d1: not honoured: pinned backend ... is not available here`` (one device; for
    ``model``, its answer for that model)."""
    pin = pin_of(device, model)
    unanswered = pin.get("state") == "waiting" or (model is not None and not pin)
    if not device.get("online") and unanswered:
        return f"{device.get('id')}: offline, it gets the pin when it reconnects"
    nothing = "serves no model" if model is None else f"does not serve {model}"
    answer = pin_answer(pin, long=True).removeprefix(", ") or f"{nothing}: nothing to pin"
    return f"{device.get('id')}: {answer}"


def verdict(
    answers: Mapping[str, Mapping[str, Any]],
    backend: str,
    timeout: float,
    model: str | None = None,
) -> None:
    """Raise for devices that cannot honour ``backend``, then for silent online ones."""
    refused = [d for d, v in answers.items() if pin_of(v, model).get("state") == "not honoured"]
    if refused:
        raise PinNotHonoured(
            f"{len(refused)} of {plural(len(answers), 'device')} cannot honour the pin "
            f"{backend}: " + ", ".join(refused)
        )
    silent = [d for d, v in answers.items() if _waiting(v, model)]
    if silent:
        raise WatchTimeout(
            f"{plural(len(silent), 'online device')} "
            f"{'has' if len(silent) == 1 else 'have'} not answered after "
            f"{format_duration(timeout)}: {', '.join(silent)} (edgectl devices list shows "
            "their answers)"
        )


def _apply(args: argparse.Namespace, backend: str | None) -> int:
    scope, name, shown = _scope(args)
    wait = backend is not None and not getattr(args, "no_wait", True)
    timeout = DEFAULT_WAIT_S
    if wait and args.timeout is not None:
        timeout = parse_duration(args.timeout, what="--timeout")
    model = args.model
    with ControlPlaneClient(args.url, token=args.token) as client:
        result = client.set_pin(scope, name, backend, model=model)
        reissued = [str(d) for d in result.get("reissued", [])]
        answers: dict[str, dict[str, Any]] = {}
        if wait and reissued:
            fetch: Callable[[], Sequence[Mapping[str, Any]]]
            if scope == "fleets":
                fetch = lambda: client.devices(fleet=name)  # noqa: E731
            else:
                fetch = lambda: [client.device(name)]  # noqa: E731
            answers = wait_for_answers(fetch, reissued, timeout=timeout, model=model)
    if args.json:
        print(json.dumps(result | ({"devices": list(answers.values())} if wait else {}), indent=2))
    else:
        if model is not None:
            shown = f"model {model} of {shown}"
        what = f"pinned {shown} to {backend}" if backend else f"removed the backend pin of {shown}"
        sent = f"new command for {plural(len(reissued), 'device')}"
        print(f"{what}; {sent}" + (f": {', '.join(reissued)}" if reissued else ""))
        for device in answers.values():
            print(answer_line(device, model))
    if wait and backend is not None:
        verdict(answers, backend, timeout, model)
    return 0


def _cmd_set(args: argparse.Namespace) -> int:
    if args.timeout is not None:
        parse_duration(args.timeout, what="--timeout")  # refused before anything is sent
    return _apply(args, check_backend_key(args.backend))


def _cmd_clear(args: argparse.Namespace) -> int:
    return _apply(args, None)


def _target(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fleet", help="every device of this fleet (a device pin wins)")
    group.add_argument("--device", help="this device")
    parser.add_argument(
        "--model",
        help="this model only (over the pin for every model of the fleet or device)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_commands(sub: SubParsers) -> None:
    """Register ``pin set|clear`` on the top-level subparsers."""
    pin = sub.add_parser("pin", help="pin a backend on a fleet or device").add_subparsers(
        dest="pin_cmd", required=True
    )
    set_ = pin.add_parser("set", help="pin a backend: devices use it instead of measuring")
    _target(set_)
    set_.add_argument("backend", metavar="KEY", help="runtime:device:precision")
    set_.add_argument(
        "--timeout",
        metavar="DURATION",
        help="wait this long for the online devices' answers (default 1m)",
    )
    set_.add_argument("--no-wait", action="store_true", help="return once the commands are sent")
    set_.set_defaults(handler=_cmd_set)
    clear = pin.add_parser("clear", help="remove a pin: devices measure again")
    _target(clear)
    clear.set_defaults(handler=_cmd_clear)
