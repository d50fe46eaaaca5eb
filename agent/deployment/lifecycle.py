"""The deployment lifecycle as one explicit transition table (Mender's update state machine).

One model assignment moves through::

    idle ─▶ downloading ─▶ verifying ─▶ staging ─▶ selecting ─▶ warming_up ─▶ activating
      │          │             │           │           │            │             │
      │          └─▶ failed ◀──┴───────────┘           └──▶ rolling_back ◀────────┘
      │                ▲                                        │               ▼
      │                └────────────────────────────────────────┘           committed
      ├─ cached ─▶ verifying
      └─ already_active ─▶ committed

Each state does one thing and posts exactly one event (``done`` or ``error``):

- ``downloading``: fetch the bundle into ``staging/<digest>`` (resumable);
- ``verifying``: check the signature and every file digest of the staged (or cached) bundle;
- ``staging``: move the verified bundle into the content-addressed cache ``models/<digest>``;
- ``selecting``: choose the backend and load the model into a runner;
- ``warming_up``: the health gate (bootstrap input, finite outputs, latency bound);
- ``activating``: switch the persisted active pointer, then swap the served model;
- ``committed``: the new version is the one that runs (terminal);
- ``rolling_back``: after any failure past staging, make the previous version the active
  one again (pointer and served model);
- ``failed``: terminal; the previous version (if any) still serves.

The journal (``agent.deployment.journal``) persists the state *before* its side effect,
so a restarted agent knows where it stopped; ``resume_state`` says where it picks up.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from agent.errors import IllegalTransition
from protocol import DeviceStatus

logger = logging.getLogger(__name__)


class State(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    STAGING = "staging"
    SELECTING = "selecting"
    WARMING_UP = "warming_up"
    ACTIVATING = "activating"
    COMMITTED = "committed"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"


class Event(StrEnum):
    START = "start"  # idle: the bundle must be downloaded
    CACHED = "cached"  # idle: the bundle is in the cache already
    ALREADY_ACTIVE = "already_active"  # idle: that very bundle serves already
    DONE = "done"
    ERROR = "error"


S, E = State, Event
#: (state, event) -> next state. Anything else is illegal.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.IDLE, E.START): S.DOWNLOADING,
    (S.IDLE, E.CACHED): S.VERIFYING,
    (S.IDLE, E.ALREADY_ACTIVE): S.COMMITTED,
    (S.IDLE, E.ERROR): S.FAILED,
    (S.DOWNLOADING, E.DONE): S.VERIFYING,
    (S.DOWNLOADING, E.ERROR): S.FAILED,
    (S.VERIFYING, E.DONE): S.STAGING,
    (S.VERIFYING, E.ERROR): S.FAILED,
    (S.STAGING, E.DONE): S.SELECTING,
    (S.STAGING, E.ERROR): S.FAILED,
    # past staging, every failure goes through rolling_back
    (S.SELECTING, E.DONE): S.WARMING_UP,
    (S.SELECTING, E.ERROR): S.ROLLING_BACK,
    (S.WARMING_UP, E.DONE): S.ACTIVATING,
    (S.WARMING_UP, E.ERROR): S.ROLLING_BACK,
    (S.ACTIVATING, E.DONE): S.COMMITTED,
    (S.ACTIVATING, E.ERROR): S.ROLLING_BACK,
    (S.ROLLING_BACK, E.DONE): S.FAILED,
    (S.ROLLING_BACK, E.ERROR): S.FAILED,
}

TERMINAL: frozenset[State] = frozenset({S.COMMITTED, S.FAILED})

#: Where a restarted agent picks up an assignment whose journal says ``state``.
#: Before staging the work is redone (a download resumes from its partial files);
#: selecting and warming up load the model again from the cache; an interrupted
#: activation is decided by the persisted pointer (``activating`` is resumed by the
#: manager: committed if the pointer names the new version and it restored, else it
#: loads again); an interrupted rollback is finished.
RESUME: dict[State, State] = {
    S.IDLE: S.IDLE,
    S.DOWNLOADING: S.IDLE,
    S.VERIFYING: S.IDLE,
    S.STAGING: S.IDLE,
    S.SELECTING: S.IDLE,
    S.WARMING_UP: S.IDLE,
    S.ACTIVATING: S.ACTIVATING,
    S.ROLLING_BACK: S.ROLLING_BACK,
    S.COMMITTED: S.COMMITTED,
    S.FAILED: S.FAILED,
}

#: How each state shows in the device's StateReport while it runs.
REPORTED_STATUS: dict[State, DeviceStatus] = {
    S.IDLE: DeviceStatus.DOWNLOADING,
    S.DOWNLOADING: DeviceStatus.DOWNLOADING,
    S.VERIFYING: DeviceStatus.VERIFYING,
    S.STAGING: DeviceStatus.VERIFYING,
    S.SELECTING: DeviceStatus.LOADING,
    S.WARMING_UP: DeviceStatus.LOADING,
    S.ACTIVATING: DeviceStatus.LOADING,
    S.COMMITTED: DeviceStatus.ACTIVE,
    S.ROLLING_BACK: DeviceStatus.LOADING,
    S.FAILED: DeviceStatus.FAILED,
}


def next_state(state: State, event: Event) -> State:
    """The table's answer; IllegalTransition (a bug, never input) for a missing row."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"illegal deployment transition {state} --{event}-->") from None


def resume_state(state: State) -> State:
    """Where a restarted agent picks up an assignment left in ``state``."""
    return RESUME[state]


def is_terminal(state: State) -> bool:
    return state in TERMINAL
