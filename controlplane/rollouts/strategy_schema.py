"""The JSON Schema of a rollout strategy: what ``Strategy.from_json`` accepts, written
into the API's description (``RolloutCreate.strategy``, ``RollbackRequest.strategy``).
Every key may be omitted or null (its default); unknown keys are refused."""

from __future__ import annotations

from typing import Any

from controlplane.rollouts.strategy import GateAction


def _number(**bounds: float) -> dict[str, Any]:
    return {"type": ["number", "null"], **bounds}


def _integer(**bounds: int) -> dict[str, Any]:
    return {"type": ["integer", "null"], **bounds}


GATE_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "latency_pct": _number(minimum=0),
        "latency_floor_ms": _number(minimum=0),
        "error_rate_pct": _number(minimum=0),
        "min_requests": _integer(minimum=0),
        "no_traffic_timeout_s": _number(exclusiveMinimum=0),
        "action": {"type": ["string", "null"], "enum": [*(a.value for a in GateAction), None]},
        "enabled": {"type": ["boolean", "null"]},
    },
}

SHADOW_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["duration_s"],
    "properties": {
        "duration_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 7 * 24 * 3600},
        "sample_pct": _number(exclusiveMinimum=0, maximum=100),
        "min_agreement_pct": _number(minimum=0, maximum=100),
    },
}

STRATEGY_SCHEMA: dict[str, Any] = {
    "additionalProperties": False,
    "properties": {
        "canary": _integer(minimum=1),
        "canary_pct": _number(exclusiveMinimum=0, maximum=100),
        "batches": _integer(minimum=1),
        "wait_s": _number(minimum=0),
        "max_failures_pct": _number(minimum=0, maximum=100),
        "min_finished": _integer(minimum=1),
        "install_timeout_s": _number(exclusiveMinimum=0),
        "gate": GATE_SCHEMA,
        "shadow": SHADOW_SCHEMA,
    },
    # canary or canary_pct, not both
    "not": {
        "type": "object",
        "required": ["canary", "canary_pct"],
        "properties": {"canary": {"type": "integer"}, "canary_pct": {"type": "number"}},
    },
}
