"""``--input-shape/--input-range/--input-value``: what real inputs of the model look like.

They become the bundle's ``input_hints`` (``model_store.InputHint``, signed with it), from
which devices generate the inputs of backend selection and of the health gate when the
bundle ships no ``bootstrap.npz``:

* ``--input-shape NAME=1x3x640x640`` (``NAME=`` alone: a scalar);
* ``--input-range NAME=LOW:HIGH`` (values drawn uniformly in it);
* ``--input-value NAME=16000`` (allowed values; repeat it or give ``NAME=8000,16000``).

Each is repeatable, one input per use. A malformed one exits 2 with one line; whether the
hints fit the model (names, ranks, fixed dimensions, integer values) is checked when the
bundle is built.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

#: what ``edgectl push`` says when devices will have to guess the inputs
NO_HINTS_WARNING = (
    "edgectl: warning: {name} has dynamic input dimensions beyond the batch ({inputs}) "
    "and neither a "
    "bootstrap.npz nor input hints: devices will measure it on default shapes and values; "
    "add --extra bootstrap.npz or --input-shape/--input-range/--input-value"
)


def _split(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{flag} wants NAME=VALUE, not {text!r}")
    return name.strip(), value.strip()


def _number(text: str, flag: str, whole: str) -> int | float:
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{flag}: {text!r} in {whole!r} is not a number")
    return value


def parse_shape(text: str) -> tuple[str, list[int]]:
    """``NAME=1x3x640x640`` -> (name, dims); ``NAME=`` is a scalar."""
    name, value = _split(text, "--input-shape")
    if not value:
        return name, []
    dims = []
    for part in value.lower().split("x"):
        if not part.strip().isdigit() or int(part) < 1:
            raise argparse.ArgumentTypeError(
                f"--input-shape wants NAME=DIMxDIM... with dimensions >= 1, not {text!r}"
            )
        dims.append(int(part))
    return name, dims


def parse_range(text: str) -> tuple[str, list[int | float]]:
    """``NAME=LOW:HIGH`` -> (name, [low, high])."""
    name, value = _split(text, "--input-range")
    low, sep, high = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"--input-range wants NAME=LOW:HIGH, not {text!r}")
    return name, [_number(low, "--input-range", text), _number(high, "--input-range", text)]


def parse_values(text: str) -> tuple[str, list[int | float]]:
    """``NAME=V`` or ``NAME=V1,V2`` -> (name, values)."""
    name, value = _split(text, "--input-value")
    return name, [_number(v.strip(), "--input-value", text) for v in value.split(",")]


def add_input_hint_options(parser: argparse.ArgumentParser) -> None:
    """The three repeatable input-hint flags."""
    parser.add_argument(
        "--input-shape",
        type=parse_shape,
        action="append",
        default=[],
        metavar="NAME=DIMS",
        help="a representative shape of input NAME, e.g. images=1x3x640x640; repeatable",
    )
    parser.add_argument(
        "--input-range",
        type=parse_range,
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="the range of input NAME's values, e.g. pixels=0:255; repeatable",
    )
    parser.add_argument(
        "--input-value",
        type=parse_values,
        action="append",
        default=[],
        metavar="NAME=V[,V...]",
        help="allowed values of input NAME, e.g. sr=16000; repeatable",
    )


def input_hints_of(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """The ``input_hints`` the flags give (``model_store.InputHint`` per name), or None."""
    hints: dict[str, dict[str, Any]] = {}
    for name, dims in getattr(args, "input_shape", None) or []:
        hints.setdefault(name, {})["shape"] = dims
    for name, span in getattr(args, "input_range", None) or []:
        hints.setdefault(name, {})["range"] = span
    for name, values in getattr(args, "input_value", None) or []:
        hints.setdefault(name, {}).setdefault("values", []).extend(values)
    return hints or None
