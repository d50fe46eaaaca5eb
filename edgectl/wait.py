"""Waiting for a deployment to settle on its target devices."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgectl.client import ControlPlaneClient

DONE = {"activated", "failed"}


def target_statuses(deployment: dict[str, Any]) -> dict[str, str]:
    """Map device id -> status from a ``GET /deployments/{id}`` answer."""
    return {str(t["device_id"]): str(t["status"]) for t in deployment.get("targets", [])}


def wait_for_deployment(
    client: ControlPlaneClient,
    deployment_id: int,
    *,
    timeout: float,
    on_progress: Callable[[dict[str, str]], None] | None = None,
    interval: float = 0.5,
) -> dict[str, Any]:
    """Poll until every target activated or failed, or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while True:
        deployment = client.deployment(deployment_id)
        statuses = target_statuses(deployment)
        if statuses != last and on_progress is not None:
            on_progress(statuses)
        last = statuses
        if all(s in DONE for s in statuses.values()) or time.monotonic() >= deadline:
            return deployment
        time.sleep(interval)
