"""Durations on the command line: ``30s``, ``5m``, ``1h30m``, ``250ms``, ``2d`` or plain
seconds (``90``, ``1.5``); and back to that short form for display."""

from __future__ import annotations

import math
import re

from edgectl.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``; UsageError (one line) if it is not a duration.

    Units may be combined, largest first, each at most once (``1h30m``, ``2m30s``).
    """
    value = text.strip().lower()
    if _NUMBER.fullmatch(value):
        return float(value)
    parts = list(_PART.finditer(value))
    covered = "".join(m.group(0) for m in parts)
    units = [m.group(2) for m in parts]
    order = list(_UNITS)[::-1]  # d, h, m, s, ms
    if (
        not parts
        or covered != value
        or len(set(units)) != len(units)
        or units != sorted(units, key=order.index)
    ):
        raise UsageError(
            f"invalid {what} {text!r}: expected e.g. 30s, 5m, 1h30m, 250ms or plain seconds"
        )
    return sum(float(m.group(1)) * _UNITS[m.group(2)] for m in parts)


def format_duration(seconds: float) -> str:
    """``seconds`` as ``1h30m``, ``2m5s``, ``45s``, ``1.5s`` or ``250ms``."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"not a duration: {seconds}")
    if seconds < 1:
        return f"{round(seconds * 1000):d}ms" if seconds else "0s"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.3g}s"
    rest = round(seconds)
    out = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        count, rest = divmod(rest, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"
