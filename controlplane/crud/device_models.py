"""What a device serves, per model, from its latest state report (for the operator's views).

``models`` is one entry per model the device serves (``state`` ``active``) or failed to
install in the generation it processed last (``failed``, or ``retrying`` while the agent
tries again by itself), each with its version, backend, share of the box and measured
memory; ``memory`` is the agent's memory budget for its models and what they take.
"""

from __future__ import annotations

from typing import Any

from protocol import StateReport


def device_models(report: StateReport) -> list[dict[str, Any]]:
    """The per-model entries of ``report``, sorted by name (a failed model that still
    serves an older version shows as that version, ``active``, with the failure's reason)."""
    found: dict[str, dict[str, Any]] = {}
    for m in report.active:
        found[m.name] = {
            "name": m.name,
            "version": m.version,
            "bundle_digest": m.bundle_digest,
            "backend": m.backend,
            "deployment_id": m.deployment_id,
            "memory_bytes": m.memory_bytes,
            "priority": m.priority,
            "threads": m.threads,
            "concurrency": m.concurrency,
            "state": "active",
            "reason": None,
        }
    for f in report.failures:
        state = "retrying" if f.retrying else "failed"
        if f.name in found:
            found[f.name]["reason"] = f"{f.version} {state}: {f.reason}"
            continue
        found[f.name] = {
            "name": f.name,
            "version": f.version,
            "deployment_id": f.deployment_id,
            "state": state,
            "reason": f.reason,
        }
    return [found[name] for name in sorted(found)]


def device_memory(report: StateReport) -> dict[str, int] | None:
    """``{budget_bytes, models_bytes}`` of ``report`` (None: an agent that says nothing)."""
    if report.memory_budget_bytes is None and report.memory_models_bytes is None:
        return None
    return {
        "budget_bytes": report.memory_budget_bytes or 0,
        "models_bytes": report.memory_models_bytes or 0,
    }
