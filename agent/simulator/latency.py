"""The simulator's latency knob: extra inference latency on chosen devices and versions.

A rule is written ``MODEL[:VERSION]=DURATION[@DEVICES]`` (``edge-agent simulate --slow``):

- ``MODEL`` the model name; ``VERSION`` one version of it (omitted: every version);
- ``DURATION`` ``40ms``, ``0.04s`` or a bare number of milliseconds;
- ``DEVICES`` which simulated devices, by index (0 .. count-1): ``all`` (the default),
  ``every-N`` (also ``every-2nd``, ``every-3rd``, ``every-4th``...: indices 0, N, 2N...),
  or a comma list of indices and inclusive ranges, e.g. ``0,1,5-9``.

Examples: ``det:2.0.0=40ms@every-3rd``, ``det=5ms``, ``det:2.0.0=0.1s@0-1``.
Several rules add up. ``parse_slow_rule`` raises ``ValueError`` with one line on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: (device index, model name, version) -> extra milliseconds per inference
LatencyKnob = Callable[[int, str, str], float]

_EVERY = re.compile(r"^every-(\d+)(?:st|nd|rd|th)?$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s)?$")


@dataclass(frozen=True)
class SlowRule:
    """``ms`` extra milliseconds on ``model`` (``version``: one, None: any) for the
    devices in ``indices`` (None: all), or every ``every``-th device (0, every, 2*every...)."""

    model: str
    ms: float
    version: str | None = None
    indices: frozenset[int] | None = None
    every: int | None = None

    def __post_init__(self) -> None:
        if self.ms < 0:
            raise ValueError(f"latency must not be negative, got {self.ms} ms")
        if self.every is not None and self.every < 1:
            raise ValueError(f"every-N needs N >= 1, got {self.every}")
        if self.every is not None and self.indices is not None:
            raise ValueError("a rule takes device indices or every-N, not both")

    def applies(self, index: int, model: str, version: str) -> bool:
        if model != self.model or (self.version is not None and version != self.version):
            return False
        if self.every is not None:
            return index % self.every == 0
        return self.indices is None or index in self.indices


def _devices(text: str) -> tuple[frozenset[int] | None, int | None]:
    if text == "all":
        return None, None
    if match := _EVERY.match(text):
        return None, int(match.group(1))
    indices: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            raise ValueError(
                f"bad device set {text!r}: expected all, every-N or indices like 0,1,5-9"
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise ValueError(f"bad device range {part.strip()!r}: the end is below the start")
        indices.update(range(low, high + 1))
    return frozenset(indices), None


def _duration_ms(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"bad duration {text!r}: expected e.g. 40ms, 0.04s or 40")
    value = float(match.group(1))
    return value * 1000.0 if match.group(2) == "s" else value


def parse_slow_rule(text: str) -> SlowRule:
    """``det:2.0.0=40ms@every-3rd`` -> SlowRule; ValueError (one line) if malformed."""
    target, sep, rest = text.strip().partition("=")
    if not sep or not target or not rest:
        raise ValueError(f"bad latency rule {text!r}: expected MODEL[:VERSION]=DURATION[@DEVICES]")
    model, _, version = target.partition(":")
    duration, _, devices = rest.partition("@")
    if not model:
        raise ValueError(f"bad latency rule {text!r}: no model name")
    indices, every = _devices(devices or "all")
    ms = _duration_ms(duration)
    return SlowRule(model=model, version=version or None, ms=ms, indices=indices, every=every)


def knob_of(rules: Sequence[SlowRule]) -> LatencyKnob:
    """The knob of ``rules``: the sum of the ms of every rule that applies."""
    frozen = tuple(rules)

    def latency_ms(index: int, model: str, version: str) -> float:
        return sum(r.ms for r in frozen if r.applies(index, model, version))

    return latency_ms
