"""The rollout strategy's JSON Schema (in the API description) accepts what
``Strategy.from_json`` accepts and refuses what it refuses, body by body."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from controlplane.rollouts.strategy import Strategy
from controlplane.rollouts.strategy_schema import STRATEGY_SCHEMA
from controlplane.schemas import RollbackRequest, RolloutCreate

BODIES: list[Any] = [
    None,
    {},
    {"canary": 2, "batches": 3, "wait_s": 300, "gate": {"latency_pct": 25, "action": "abort"}},
    {"canary": None, "canary_pct": 10.5},
    {"canary": 1, "canary_pct": None, "max_failures_pct": 0, "gate": None},
    {"gate": {"enabled": False, "min_requests": 0, "no_traffic_timeout_s": 0.5}},
    {"canary": 0},
    {"canary": 2, "canary_pct": 5},
    {"canary_pct": 0},
    {"canary_pct": 101},
    {"batches": 0},
    {"wait_s": -1},
    {"max_failures_pct": 100.5},
    {"min_finished": 0},
    {"install_timeout_s": 0},
    {"gate": {"latency_pct": -1}},
    {"gate": {"no_traffic_timeout_s": 0}},
    {"gate": {"action": "explode"}},
    {"gate": {"unknown": 1}},
    {"surprise": True},
    {"batches": "3"},
    {"gate": {"enabled": "yes"}},
    {"shadow": {"duration_s": 600, "sample_pct": 20, "min_agreement_pct": 99}},
    {"shadow": {"duration_s": 30}},
    {"shadow": None},
    {"shadow": {}},
    {"shadow": {"duration_s": 0}},
    {"shadow": {"duration_s": 10, "sample_pct": 0}},
    {"shadow": {"duration_s": 10, "min_agreement_pct": 100.5}},
    {"shadow": {"duration_s": 10, "unknown": 1}},
    {"shadow": {"duration_s": 8 * 24 * 3600}},
]


def _server_accepts(body: Any) -> bool:
    try:
        Strategy.from_json(body or {})
    except (ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize("body", BODIES, ids=[str(b) for b in BODIES])
def test_the_schema_and_the_server_agree(body: Any) -> None:
    for model in (RolloutCreate, RollbackRequest):
        schema = model.model_json_schema()["properties"]["strategy"]
        valid = jsonschema.Draft202012Validator(schema).is_valid(body)
        assert valid == _server_accepts(body), (model.__name__, body)
    assert "additionalProperties" in STRATEGY_SCHEMA
