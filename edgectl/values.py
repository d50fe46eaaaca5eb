"""Operator input the CLI checks before it contacts anything: label selectors
(``k=v,k2=v2``), label edits (``k=v`` sets, ``k-`` removes, kubectl style), canary sizes
(``N`` devices or ``P%``) and percentages. Each parser raises UsageError (one line)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgectl.errors import UsageError

#: Label keys and values (the control plane checks the same).
LABEL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}"
_LABEL = re.compile(LABEL_PATTERN)
_SHAPE = "expected key=value with letters, digits and . _ / - (at most 63 characters)"


def _check_label(text: str, kind: str, source: str) -> str:
    if _LABEL.fullmatch(text) is None:
        raise UsageError(f"invalid label {kind} {text!r} in {source!r}: {_SHAPE}")
    return text


def parse_selector(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (every pair must match) as a dict; an empty text selects everything."""
    selector: dict[str, str] = {}
    if not text.strip():
        return selector
    for item in (p.strip() for p in text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"invalid selector {text!r}: {item!r} is not key=value")
        key, value = key.strip(), value.strip()
        _check_label(key, "key", text)
        _check_label(value, "value", text)
        if key in selector and selector[key] != value:
            raise UsageError(f"invalid selector {text!r}: {key!r} given twice")
        selector[key] = value
    return selector


def format_labels(labels: Mapping[str, object]) -> str:
    """``k=v,k2=v2`` sorted by key (``-`` for none): selector syntax, so it can be pasted."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


@dataclass(frozen=True)
class LabelEdit:
    set: dict[str, str]
    remove: list[str]

    def body(self) -> dict[str, object]:
        """The body of ``PATCH /devices/{id}/labels``."""
        return {"set": self.set, "remove": self.remove}


def parse_label_edits(items: Sequence[str]) -> LabelEdit:
    """``["k=v", "k2-"]``: set ``k``, remove ``k2``. A key may appear once."""
    if not items:
        raise UsageError("no labels given: expected key=value to set or key- to remove")
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for item in items:
        if "=" in item:
            key, _, value = item.partition("=")
            _check_label(key, "key", item)
            _check_label(value, "value", item)
        elif item.endswith("-"):
            key, value = _check_label(item[:-1], "key", item), ""
        else:
            raise UsageError(f"invalid label {item!r}: expected key=value, or key- to remove it")
        if key in to_set or key in remove:
            raise UsageError(f"label {key!r} given twice")
        if "=" in item:
            to_set[key] = value
        else:
            remove.append(key)
    return LabelEdit(set=to_set, remove=remove)


def parse_percent(
    text: str, *, what: str, allow_zero: bool = True, maximum: float | None = 100.0
) -> float:
    """``20%`` or ``20`` as 20.0, from 0 (above 0 unless ``allow_zero``) to ``maximum``."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = maximum is None or value <= maximum
    if not math.isfinite(value) or not low_ok or not high_ok:
        low = "0" if allow_zero else "above 0"
        span = (
            f"from {low} to {maximum:g}%"
            if maximum is not None
            else ("of 0% or more" if allow_zero else "above 0%")
        )
        raise UsageError(f"invalid {what} {text!r}: expected a percentage {span}")
    return value


def parse_positive_int(text: str, *, what: str, minimum: int = 1) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"invalid {what} {text!r}: expected a whole number >= {minimum}")
    return value


def parse_canary(text: str) -> dict[str, float | int]:
    """``--canary``: ``3`` (devices) -> ``{"canary": 3}``; ``10%`` -> ``{"canary_pct": 10.0}``."""
    if text.strip().endswith("%"):
        return {"canary_pct": parse_percent(text, what="--canary", allow_zero=False)}
    try:
        count = int(text.strip())
    except ValueError:
        count = 0
    if count < 1:
        raise UsageError(
            f"invalid --canary {text!r}: expected a number of devices (3) or a percentage (10%)"
        )
    return {"canary": count}
