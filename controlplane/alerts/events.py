"""Alert event types and their payloads (pure: no I/O, no database).

Every delivery's body is one JSON object, the event's *envelope*::

    {"id": "evt_…", "type": "rollout.paused", "created_at": "2026-…Z", "data": {…}}

``id`` is the same at every attempt (the receiver's idempotency key); ``data`` holds the
rollout's or device's fields an operator needs, with ``dashboard`` (the path of its page
on the control plane) and ``api`` (its API path).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    ROLLOUT_PAUSED = "rollout.paused"
    ROLLOUT_ABORTED = "rollout.aborted"
    ROLLOUT_COMPLETED = "rollout.completed"
    DEVICE_FAILED = "device.failed"
    DEVICE_REGRESSED = "device.regressed"
    DEVICE_OFFLINE = "device.offline"
    #: ``edgectl alerts test``: sent to one webhook, whatever it subscribed to
    PING = "ping"


#: What a webhook may subscribe to (all of them by default).
SUBSCRIBABLE: tuple[str, ...] = tuple(t.value for t in EventType if t is not EventType.PING)

#: The rollout state each rollout event is about.
ROLLOUT_EVENTS: Mapping[str, EventType] = {
    "paused": EventType.ROLLOUT_PAUSED,
    "aborted": EventType.ROLLOUT_ABORTED,
    "completed": EventType.ROLLOUT_COMPLETED,
}


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    if at.tzinfo is None:  # SQLite hands back naive UTC timestamps
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rollout_data(
    *,
    rollout_id: int,
    model: str,
    version: str,
    fleet: str,
    state: str,
    reason: str | None,
    previous_version: str | None,
    selector: Mapping[str, str],
    rollback_of: int | None,
) -> dict[str, Any]:
    return {
        "rollout": {
            "id": rollout_id,
            "model": model,
            "version": version,
            "fleet": fleet,
            "state": state,
            "reason": reason,
            "previous_version": previous_version,
            "selector": dict(selector),
            "rollback_of": rollback_of,
        },
        "dashboard": f"/dashboard/rollouts/{rollout_id}",
        "api": f"/api/v1/rollouts/{rollout_id}",
    }


def device_data(
    *,
    device_id: str,
    fleet: str | None,
    model: str | None,
    version: str | None,
    reason: str | None,
    rollout_id: int | None = None,
    deployment_id: int | None = None,
    last_seen_at: datetime | None = None,
    offline_for_s: int | None = None,
) -> dict[str, Any]:
    device: dict[str, Any] = {"id": device_id, "fleet": fleet, "model": model, "version": version}
    data: dict[str, Any] = {"device": device, "reason": reason}
    if rollout_id is not None:
        data["rollout"] = {"id": rollout_id, "dashboard": f"/dashboard/rollouts/{rollout_id}"}
    if deployment_id is not None:
        data["deployment_id"] = deployment_id
    if last_seen_at is not None:
        device["last_seen_at"] = _iso(last_seen_at)
    if offline_for_s is not None:
        device["offline_for_s"] = offline_for_s
    data["dashboard"] = f"/dashboard/devices/{device_id}"
    data["api"] = f"/api/v1/devices/{device_id}"
    return data


def envelope(*, event_id: str, type_: str, at: datetime, data: Mapping[str, Any]) -> bytes:
    """The body POSTed for an event: the same bytes at every attempt."""
    body = {"id": event_id, "type": type_, "created_at": _iso(at), "data": dict(data)}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
