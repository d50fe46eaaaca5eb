"""Planning a rollout and summing it up (pure): its batches, where the strategy could not
be followed as asked, and the words a completed rollout ends with.

Part of the rollout policy (:mod:`controlplane.rollouts.policy` re-exports these).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum

from controlplane.rollouts.strategy import Strategy

__all__ = ["RolloutDeviceStatus", "counted", "plan_batches", "plan_notes", "summary"]


class RolloutDeviceStatus(StrEnum):
    """Where one device of a rollout is (``RolloutDevice.status``); not the state a device
    reports about itself, which is ``protocol.DeviceStatus``."""

    PENDING = "pending"
    UPDATING = "updating"
    #: the agent reported a failure it is retrying by itself: not an outcome
    RETRYING = "retrying"
    ACTIVATED = "activated"
    FAILED = "failed"
    REGRESSED = "regressed"
    ROLLED_BACK = "rolled_back"
    #: never started: the rollout was aborted before the device's batch
    SKIPPED = "skipped"


def plan_batches(device_ids: Sequence[str], strategy: Strategy) -> list[list[str]]:
    """The batches of a rollout, canary first; deterministic (sorted, de-duplicated ids)."""
    ids = sorted(set(device_ids))
    if not ids:
        return []
    plan: list[list[str]] = []
    canary = 0
    if strategy.canary is not None:
        canary = strategy.canary
    elif strategy.canary_pct is not None:
        # round() first so that 15% of 20 is 3, not ceil(3.0000000000000004) = 4.
        canary = max(1, math.ceil(round(len(ids) * strategy.canary_pct / 100, 9)))
    canary = min(canary, len(ids))
    if canary:
        plan.append(ids[:canary])
    rest = ids[canary:]
    count = min(strategy.batches, len(rest))
    if count:
        size, extra = divmod(len(rest), count)
        start = 0
        for index in range(count):
            end = start + size + (1 if index < extra else 0)
            plan.append(rest[start:end])
            start = end
    return plan


def plan_notes(count: int, strategy: Strategy, plan: Sequence[Sequence[str]]) -> list[str]:
    """Where :func:`plan_batches` could not follow ``strategy`` as asked for ``count``
    matching devices, one line each (empty when it did)."""
    notes: list[str] = []
    canary = len(plan[0]) if plan and strategy.canary is not None else 0
    if strategy.canary is not None and strategy.canary > count:
        notes.append(
            f"canary of {strategy.canary} asked, {_n_devices(count)} match: the canary is "
            f"{'all of them' if count > 1 else 'that one'}"
        )
    if strategy.canary_pct is not None and plan:
        canary = len(plan[0])
    rest = count - canary
    if strategy.batches > 1 and strategy.batches > rest:
        after = " after the canary" if canary else ""
        if rest == 0:
            notes.append(f"{strategy.batches} batches asked, no device left{after}: none run")
        else:
            notes.append(
                f"{strategy.batches} batches asked, {_n_devices(rest)} left{after}: "
                f"{rest} batch{'es' if rest != 1 else ''} of 1"
            )
    return notes


def counted(count: int, word: str = "device") -> str:
    """``1 device``, ``3 devices``, ``2 batches``: a count for a history message."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}{'es' if word.endswith(('s', 'sh', 'ch', 'x')) else 's'}"


def _n_devices(count: int) -> str:
    return counted(count)


def summary(statuses: Iterable[RolloutDeviceStatus]) -> str:
    """How a completed rollout ended: ``all 20 devices updated`` (``1 device updated``
    for one) only when every one was, else ``17 of 20 devices updated (2 failed, 1
    regressed)``."""
    found = Counter(statuses)
    total = sum(found.values())
    updated = found[RolloutDeviceStatus.ACTIVATED]
    others = [
        f"{found[s]} {s.value.replace('_', ' ')}"
        for s in RolloutDeviceStatus
        if s is not RolloutDeviceStatus.ACTIVATED and found[s]
    ]
    if not others:
        return f"all {total} devices updated" if total != 1 else "1 device updated"
    return f"{updated} of {_n_devices(total)} updated ({', '.join(others)})"
