"""A rollout's strategy: canary, batches, waits, failure threshold, health gate and
shadow period.

Part of the pure rollout policy (:mod:`controlplane.rollouts.policy` re-exports these).
Both dataclasses validate themselves on construction; ``from_json`` also checks types and
refuses unknown keys. Every error is a one-line ``ValueError`` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protocol import MAX_LATENCY_FLOOR_MS, MAX_LATENCY_RATIO


class GateAction(StrEnum):
    PAUSE = "pause"
    ABORT = "abort"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _finite(name: str, value: float) -> None:
    _check(math.isfinite(value), f"{name} must be a finite number, not {value}")


@dataclass(frozen=True)
class Gate:
    """Health-gate thresholds on the inference figures devices report."""

    latency_pct: float = 25.0
    latency_floor_ms: float = 5.0
    error_rate_pct: float = 1.0
    min_requests: int = 100
    no_traffic_timeout_s: float = 300.0
    action: GateAction = GateAction.PAUSE
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("latency_pct", "latency_floor_ms", "error_rate_pct"):
            value = getattr(self, name)
            _finite(f"gate.{name}", value)
            _check(value >= 0, f"gate.{name} must be >= 0, not {fmt_num(value)}")
        _check(self.min_requests >= 0, f"gate.min_requests must be >= 0, not {self.min_requests}")
        _finite("gate.no_traffic_timeout_s", self.no_traffic_timeout_s)
        _check(
            self.no_traffic_timeout_s > 0,
            f"gate.no_traffic_timeout_s must be > 0, not {fmt_num(self.no_traffic_timeout_s)}",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_pct": self.latency_pct,
            "latency_floor_ms": self.latency_floor_ms,
            "error_rate_pct": self.error_rate_pct,
            "min_requests": self.min_requests,
            "no_traffic_timeout_s": self.no_traffic_timeout_s,
            "action": self.action.value,
            "enabled": self.enabled,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gate:
        """A gate from JSON (missing keys take the defaults); ValueError on bad values."""
        r = _Reader(data, "gate", cls.__dataclass_fields__)
        action = r.get("action", str)
        if action is not None and action not in {a.value for a in GateAction}:
            raise ValueError(f"gate.action must be pause or abort, not {action!r}")
        kwargs: dict[str, Any] = {
            "latency_pct": r.number("latency_pct"),
            "latency_floor_ms": r.number("latency_floor_ms"),
            "error_rate_pct": r.number("error_rate_pct"),
            "min_requests": r.integer("min_requests"),
            "no_traffic_timeout_s": r.number("no_traffic_timeout_s"),
            "action": None if action is None else GateAction(action),
            "enabled": r.get("enabled", bool),
        }
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


@dataclass(frozen=True)
class Shadow:
    """A shadow period before each device switches (``protocol.ShadowSpec``): the new
    version runs beside the serving one on ``sample_pct``% of live requests for
    ``duration_s``; it switches only if it agreed on ``min_agreement_pct``% of them (None:
    agreement not gated) and, with the gate on, its p50 is within the gate's
    latency threshold (``latency_pct``, ``latency_floor_ms``) of the serving version's."""

    duration_s: float
    sample_pct: float = 10.0
    min_agreement_pct: float | None = None

    def __post_init__(self) -> None:
        _finite("shadow.duration_s", self.duration_s)
        _check(
            0 < self.duration_s <= 7 * 24 * 3600,
            f"shadow.duration_s must be > 0 and at most a week, not {fmt_num(self.duration_s)}",
        )
        _finite("shadow.sample_pct", self.sample_pct)
        _check(
            0 < self.sample_pct <= 100,
            f"shadow.sample_pct must be > 0 and <= 100, not {fmt_num(self.sample_pct)}",
        )
        if self.min_agreement_pct is not None:
            _finite("shadow.min_agreement_pct", self.min_agreement_pct)
            _check(
                0 <= self.min_agreement_pct <= 100,
                "shadow.min_agreement_pct must be between 0 and 100, "
                f"not {fmt_num(self.min_agreement_pct)}",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "sample_pct": self.sample_pct,
            "min_agreement_pct": self.min_agreement_pct,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Shadow:
        r = _Reader(data, "shadow", cls.__dataclass_fields__)
        duration = r.number("duration_s")
        if duration is None:
            raise ValueError("shadow.duration_s is required")
        sample = r.number("sample_pct")
        return cls(
            duration_s=duration,
            sample_pct=10.0 if sample is None else sample,
            min_agreement_pct=r.number("min_agreement_pct"),
        )

    def spec(self, gate: Gate) -> dict[str, Any]:
        """The ``protocol.ShadowSpec`` (as JSON) each device's assignment carries."""
        spec: dict[str, Any] = {
            "duration_s": self.duration_s,
            "sample": self.sample_pct / 100,
            "min_agreement_pct": self.min_agreement_pct,
        }
        if gate.enabled:
            spec["max_latency_ratio"] = 1 + gate.latency_pct / 100
            spec["latency_floor_ms"] = gate.latency_floor_ms
        return spec


@dataclass(frozen=True)
class Strategy:
    """How a rollout proceeds: canary, batches, waits, failure threshold, gate."""

    canary: int | None = None
    canary_pct: float | None = None
    batches: int = 1
    wait_s: float = 0.0
    max_failures_pct: float | None = None
    min_finished: int = 1
    install_timeout_s: float = 600.0
    gate: Gate = field(default_factory=Gate)
    #: a shadow period before each device switches (None: it switches once installed)
    shadow: Shadow | None = None

    def __post_init__(self) -> None:
        _check(
            self.canary is None or self.canary_pct is None,
            "give canary or canary_pct, not both",
        )
        if self.canary is not None:
            _check(self.canary >= 1, f"canary must be >= 1, not {self.canary}")
        if self.canary_pct is not None:
            _finite("canary_pct", self.canary_pct)
            _check(
                0 < self.canary_pct <= 100,
                f"canary_pct must be > 0 and <= 100, not {fmt_num(self.canary_pct)}",
            )
        _check(self.batches >= 1, f"batches must be >= 1, not {self.batches}")
        _finite("wait_s", self.wait_s)
        _check(self.wait_s >= 0, f"wait_s must be >= 0, not {fmt_num(self.wait_s)}")
        if self.max_failures_pct is not None:
            _finite("max_failures_pct", self.max_failures_pct)
            _check(
                0 <= self.max_failures_pct <= 100,
                f"max_failures_pct must be between 0 and 100, not {fmt_num(self.max_failures_pct)}",
            )
        _check(self.min_finished >= 1, f"min_finished must be >= 1, not {self.min_finished}")
        _finite("install_timeout_s", self.install_timeout_s)
        _check(
            self.install_timeout_s > 0,
            f"install_timeout_s must be > 0, not {fmt_num(self.install_timeout_s)}",
        )
        if self.shadow is not None and self.gate.enabled:  # the devices' shadow gate takes it
            most = (MAX_LATENCY_RATIO - 1) * 100
            _check(
                self.gate.latency_pct <= most,
                f"with a shadow period, gate.latency_pct must be at most {fmt_num(most)}, "
                f"not {fmt_num(self.gate.latency_pct)}",
            )
            _check(
                self.gate.latency_floor_ms <= MAX_LATENCY_FLOOR_MS,
                "with a shadow period, gate.latency_floor_ms must be at most "
                f"{fmt_num(MAX_LATENCY_FLOOR_MS)}, not {fmt_num(self.gate.latency_floor_ms)}",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "canary": self.canary,
            "canary_pct": self.canary_pct,
            "batches": self.batches,
            "wait_s": self.wait_s,
            "max_failures_pct": self.max_failures_pct,
            "min_finished": self.min_finished,
            "install_timeout_s": self.install_timeout_s,
            "gate": self.gate.to_json(),
            "shadow": None if self.shadow is None else self.shadow.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Strategy:
        """A strategy from JSON (missing keys take the defaults; ``canary``,
        ``canary_pct`` and ``max_failures_pct`` may be null); ValueError on bad values."""
        r = _Reader(data, "strategy", cls.__dataclass_fields__)
        gate_data = r.get("gate", Mapping)
        shadow_data = r.get("shadow", Mapping)
        kwargs: dict[str, Any] = {
            "batches": r.integer("batches"),
            "wait_s": r.number("wait_s"),
            "min_finished": r.integer("min_finished"),
            "install_timeout_s": r.number("install_timeout_s"),
            "gate": None if gate_data is None else Gate.from_json(gate_data),
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        # These three are nullable: an explicit null means "none".
        return cls(
            canary=r.integer("canary"),
            canary_pct=r.number("canary_pct"),
            max_failures_pct=r.number("max_failures_pct"),
            shadow=None if shadow_data is None else Shadow.from_json(shadow_data),
            **kwargs,
        )


class _Reader:
    """Typed access to one JSON object's keys; unknown keys are a ValueError."""

    def __init__(self, data: Mapping[str, Any], where: str, known: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a JSON object")
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown {where} key {unknown[0]!r}")
        self.data = data
        self.where = where

    def get(self, key: str, kind: type) -> Any:
        value = self.data.get(key)
        if value is not None and not isinstance(value, kind):
            what = {str: "a string", bool: "true or false"}.get(kind, "a JSON object")
            raise ValueError(f"{self.where}.{key} must be {what}")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.where}.{key} must be a number, not {value!r}")
        return float(value)

    def integer(self, key: str) -> int | None:
        value = self.number(key)
        if value is None:
            return None
        if not value.is_integer():
            raise ValueError(f"{self.where}.{key} must be a whole number, not {fmt_num(value)}")
        return int(value)


def fmt_num(value: float, min_decimals: int = 0) -> str:
    """A number for a message: at most one decimal, none when whole (unless asked)."""
    text = f"{value:.1f}"
    if min_decimals == 0 and text.endswith(".0"):
        text = text[:-2]
    return text
