"""Following a rollout until it ends: polling, and what its end means for the exit code.

``follow_rollout`` polls ``GET /api/v1/rollouts/{id}`` until the rollout is completed,
aborted or paused, or ``timeout`` passes; a control plane that is briefly unreachable
(a restart: the rollout goes on from its database) is retried for ``grace`` seconds.
``outcome`` turns the last answer into a message (exit 0) or an EdgectlError (exit 1, 4, 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgectl.client import ControlPlaneClient
from edgectl.durations import format_duration
from edgectl.errors import RolloutFailed, RolloutPaused, UnreachableError, WatchTimeout
from edgectl.live import GATE_WAIT_HINT, gate_wait, unjudged
from edgectl.words import plural

#: States in which following stops.
ENDED = {"completed", "aborted", "paused"}


@dataclass(frozen=True)
class Followed:
    rollout: dict[str, Any]
    #: True when ``timeout`` passed while the rollout was still running.
    timed_out: bool
    timeout: float | None = None


def follow_rollout(
    client: ControlPlaneClient,
    rollout_id: int,
    *,
    on_update: Callable[[dict[str, Any]], None],
    on_note: Callable[[str | None], None] = lambda _: None,
    timeout: float | None = None,
    interval: float = 1.0,
    grace: float = 60.0,
    first: dict[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Followed:
    """Poll every ``interval`` s, calling ``on_update`` with each answer, until the
    rollout stops running (or ``timeout`` s pass). ``first``: an answer already in hand."""
    start = clock()
    unreachable_since: float | None = None
    rollout = first
    while True:
        if rollout is None:
            try:
                rollout = client.rollout(rollout_id)
            except UnreachableError as exc:
                now = clock()
                unreachable_since = now if unreachable_since is None else unreachable_since
                if now - unreachable_since >= grace:
                    raise
                on_note(f"control plane unreachable, retrying: {exc}")
            else:
                if unreachable_since is not None:
                    on_note(None)
                unreachable_since = None
        if rollout is not None:
            on_update(rollout)
            if str(rollout.get("state")) in ENDED:
                return Followed(rollout, timed_out=False, timeout=timeout)
        if timeout is not None and clock() - start >= timeout and rollout is not None:
            return Followed(rollout, timed_out=True, timeout=timeout)
        sleep(interval)
        rollout = None


def _count(rollout: Mapping[str, Any], key: str) -> int:
    return int((rollout.get("counts") or {}).get(key) or 0)


def outcome(followed: Followed) -> str:
    """The closing line of a rollout that completed on every device; else raises:
    RolloutFailed (aborted, or devices failed), RolloutPaused, WatchTimeout."""
    rollout = followed.rollout
    rid = rollout.get("id")
    state = str(rollout.get("state"))
    reason = rollout.get("reason") or ""
    if followed.timed_out:
        waited = format_duration(followed.timeout or 0.0)
        raise WatchTimeout(
            f"rollout {rid} still {state} after {waited}; it goes on on the control plane: "
            f"edgectl rollouts show {rid}" + waiting_note(rollout)
        )
    if state == "paused":
        raise RolloutPaused(
            f"rollout {rid} paused"
            + (f": {reason}" if reason else "")
            + f" (edgectl rollouts resume {rid}, or abort {rid})"
        )
    if state == "aborted":
        raise RolloutFailed(f"rollout {rid} aborted" + (f": {reason}" if reason else ""))
    failed, regressed = _count(rollout, "failed"), _count(rollout, "regressed")
    if failed or regressed:
        what = " and ".join(
            f"{n} {word}" for n, word in ((failed, "failed"), (regressed, "regressed")) if n
        )
        raise RolloutFailed(
            f"rollout {rid} completed, but {what} of {plural(_count(rollout, 'total'), 'device')}"
            + (f": {reason}" if reason else "")
        )
    line = f"rollout {rid} completed" + (f": {reason}" if reason else "")
    if idle := unjudged(rollout):
        line += f" ({plural(idle, 'device')} not judged by the gate: no traffic; {GATE_WAIT_HINT})"
    return line


def waiting_note(rollout: Mapping[str, Any]) -> str:
    """``; gate: waiting for traffic: ... (to wait less, ...)`` when the health gate holds
    the rollout for traffic, else empty: for the line that ends watching early."""
    waiting = gate_wait(rollout)
    return f"; {waiting} ({GATE_WAIT_HINT})" if waiting else ""
