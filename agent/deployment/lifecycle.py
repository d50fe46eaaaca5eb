"""The deployment lifecycle as one explicit transition table (Mender-style).

One model assignment moves through::

    idle ──▶ received ──▶ downloading ──▶ verifying ──▶ loading ──▶ warming_up
                                                                      │
    active ◀── activating ◀───────────────────────────────────────────┘

Any step before ``active`` may go to ``failed``; the previously served model is left
untouched until ``activating`` swaps it atomically. A new desired state starts again
from ``received`` (from idle, active or failed). ``received -> active`` is the no-op
path taken when the requested bundle is already the active one.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from agent.errors import IllegalTransition
from protocol import DeviceStatus

logger = logging.getLogger(__name__)


class Phase(StrEnum):
    IDLE = "idle"
    RECEIVED = "received"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    LOADING = "loading"
    WARMING_UP = "warming_up"
    ACTIVATING = "activating"
    ACTIVE = "active"
    FAILED = "failed"


P = Phase
#: (from, to) rows; anything else is illegal.
TRANSITIONS: frozenset[tuple[Phase, Phase]] = frozenset(
    {
        (P.IDLE, P.RECEIVED),
        (P.ACTIVE, P.RECEIVED),
        (P.FAILED, P.RECEIVED),
        (P.RECEIVED, P.DOWNLOADING),
        (P.RECEIVED, P.ACTIVE),  # already active: nothing to do
        (P.RECEIVED, P.VERIFYING),  # bundle already cached on disk
        (P.DOWNLOADING, P.VERIFYING),
        (P.VERIFYING, P.LOADING),
        (P.LOADING, P.WARMING_UP),
        (P.WARMING_UP, P.ACTIVATING),
        (P.ACTIVATING, P.ACTIVE),
        (P.RECEIVED, P.FAILED),
        (P.DOWNLOADING, P.FAILED),
        (P.VERIFYING, P.FAILED),
        (P.LOADING, P.FAILED),
        (P.WARMING_UP, P.FAILED),
        (P.ACTIVATING, P.FAILED),
    }
)

#: How each phase shows in the device's StateReport.
REPORTED_STATUS: dict[Phase, DeviceStatus] = {
    P.IDLE: DeviceStatus.IDLE,
    P.RECEIVED: DeviceStatus.DOWNLOADING,
    P.DOWNLOADING: DeviceStatus.DOWNLOADING,
    P.VERIFYING: DeviceStatus.VERIFYING,
    P.LOADING: DeviceStatus.LOADING,
    P.WARMING_UP: DeviceStatus.LOADING,
    P.ACTIVATING: DeviceStatus.LOADING,
    P.ACTIVE: DeviceStatus.ACTIVE,
    P.FAILED: DeviceStatus.FAILED,
}


def check_transition(current: Phase, target: Phase) -> None:
    if (current, target) not in TRANSITIONS:
        raise IllegalTransition(f"illegal deployment transition {current} -> {target}")


class Lifecycle:
    """The phase of one assignment; ``advance`` enforces the table."""

    def __init__(self, label: str, phase: Phase = Phase.IDLE) -> None:
        self.label = label
        self.phase = phase

    def advance(self, target: Phase) -> None:
        check_transition(self.phase, target)
        logger.debug("%s: %s -> %s", self.label, self.phase, target)
        self.phase = target

    @property
    def status(self) -> DeviceStatus:
        return REPORTED_STATUS[self.phase]
