"""The deployment lifecycle: one transition table and its resume rules (Mender's update
state machine: ``AddTransition`` rows, and ``LoadStateFromDb`` for a restart).

One model assignment moves through::

  idle ─▶ downloading ─▶ verifying ─▶ staging ─▶ selecting ─▶ warming_up ─▶ shadowing ─▶ activating
    │          │             │           │           │            │           │           │
    │          └─▶ failed ◀──┴───────────┘           └──▶ rolling_back ◀──────┴───────────┘
    │                ▲                                        │                           ▼
    │                └────────────────────────────────────────┘                       committed
    ├─ cached ─▶ verifying
    ├─ already_active ─▶ committed
    └─ bad_bundle ─▶ failed

Each state does one thing and posts exactly one event (``done`` or ``error``):

- ``idle``: is that bundle served already, cached, or to be downloaded? A bundle marked
  bad on this device for this generation posts ``bad_bundle`` before anything runs;
- ``downloading``: fetch the bundle into ``staging/<digest>`` (resumable);
- ``verifying``: check the signature and every file digest of the staged (or cached) bundle;
- ``staging``: move the verified bundle into the content-addressed cache ``models/<digest>``;
- ``selecting``: choose the backend and load the model into a runner;
- ``warming_up``: the health gate (bootstrap input, finite outputs, latency bound);
- ``shadowing``: if the assignment asks for a shadow period and another version serves,
  run the new one as its shadow on sampled live requests for the period and judge it
  (``agent.serving.shadow``); a failed shadow gate is an error (else: nothing to do);
- ``activating``: switch the persisted active pointer, then swap the served model;
- ``committed``: the new version is the one that runs (terminal);
- ``rolling_back``: after any failure past staging, make the previous version the active
  one again (pointer and served model);
- ``failed``: terminal; the previous version (if any) still serves.

The journal (``agent.deployment.journal``) persists the state *before* its side effect,
so a restarted agent knows where it stopped. What it does then is decided here, by pure
functions over what it finds (``resume_after_restart``, ``resume_activation``,
``start_state``): the agent gives up on an assignment it died with in flight
``max_crashes`` times (``give_up``: the bundle is marked bad, the pointer goes back to the
previous version if it named it, then ``failed``).
"""

from __future__ import annotations

import logging
from enum import StrEnum

from agent.errors import IllegalTransition
from protocol import DeviceStatus, EventKind

logger = logging.getLogger(__name__)


class State(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    STAGING = "staging"
    SELECTING = "selecting"
    WARMING_UP = "warming_up"
    SHADOWING = "shadowing"
    ACTIVATING = "activating"
    COMMITTED = "committed"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"


class Event(StrEnum):
    START = "start"  # idle: the bundle must be downloaded
    CACHED = "cached"  # idle: the bundle is in the cache already
    ALREADY_ACTIVE = "already_active"  # idle: that very bundle serves already
    BAD_BUNDLE = "bad_bundle"  # idle: the bundle is marked bad here for this generation
    DONE = "done"
    ERROR = "error"
    #: after a restart: the agent died ``max_crashes`` times with the assignment in flight
    GIVE_UP = "give_up"


S, E = State, Event

#: States an assignment is in flight in (every state but the terminal ones).
IN_FLIGHT: tuple[State, ...] = (
    S.IDLE,
    S.DOWNLOADING,
    S.VERIFYING,
    S.STAGING,
    S.SELECTING,
    S.WARMING_UP,
    S.SHADOWING,
    S.ACTIVATING,
    S.ROLLING_BACK,
)

#: (state, event) -> next state. Anything else is illegal.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.IDLE, E.START): S.DOWNLOADING,
    (S.IDLE, E.CACHED): S.VERIFYING,
    (S.IDLE, E.ALREADY_ACTIVE): S.COMMITTED,
    (S.IDLE, E.BAD_BUNDLE): S.FAILED,
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
    (S.WARMING_UP, E.DONE): S.SHADOWING,
    (S.WARMING_UP, E.ERROR): S.ROLLING_BACK,
    (S.SHADOWING, E.DONE): S.ACTIVATING,
    (S.SHADOWING, E.ERROR): S.ROLLING_BACK,
    (S.ACTIVATING, E.DONE): S.COMMITTED,
    (S.ACTIVATING, E.ERROR): S.ROLLING_BACK,
    (S.ROLLING_BACK, E.DONE): S.FAILED,
    (S.ROLLING_BACK, E.ERROR): S.FAILED,
    # giving up after a crash loop, from wherever the agent kept dying: the pointer was put
    # back before anything loaded (a model that kills the agent must not kill every start)
    **{(state, E.GIVE_UP): S.FAILED for state in IN_FLIGHT},
}

TERMINAL: frozenset[State] = frozenset({S.COMMITTED, S.FAILED})

#: Where a restarted agent picks up an assignment its journal left in a state (unless it
#: gives up on it, see ``resume_after_restart``). Before staging the work is redone (a
#: download resumes from its partial files); selecting, warming up and shadowing load the
#: model again from the cache; an interrupted rollback is finished; a settled assignment is reported
#: again. ``activating`` stays ``activating``: the switch may or may not have happened, and
#: only the restored pointer and served model tell (``resume_activation``, once the
#: committed models are restored).
RESUME: dict[State, State] = {
    S.IDLE: S.IDLE,
    S.DOWNLOADING: S.IDLE,
    S.VERIFYING: S.IDLE,
    S.STAGING: S.IDLE,
    S.SELECTING: S.IDLE,
    S.WARMING_UP: S.IDLE,
    S.SHADOWING: S.IDLE,
    S.ACTIVATING: S.ACTIVATING,
    S.ROLLING_BACK: S.ROLLING_BACK,
    S.COMMITTED: S.COMMITTED,
    S.FAILED: S.FAILED,
}

#: An interrupted activation, by (the persisted pointer names the new version, the new
#: version serves after the restart's restore): the switch happened and the new version
#: serves: committed; the switch happened but the new model does not serve (restoring it
#: failed): roll back; the switch did not happen: load it again from the cache.
ACTIVATION_RESUME: dict[tuple[bool, bool], State] = {
    (True, True): S.COMMITTED,
    (True, False): S.ROLLING_BACK,
    (False, True): S.IDLE,
    (False, False): S.IDLE,
}

#: How each state shows in the device's StateReport while it runs.
REPORTED_STATUS: dict[State, DeviceStatus] = {
    S.IDLE: DeviceStatus.DOWNLOADING,
    S.DOWNLOADING: DeviceStatus.DOWNLOADING,
    S.VERIFYING: DeviceStatus.VERIFYING,
    S.STAGING: DeviceStatus.VERIFYING,
    S.SELECTING: DeviceStatus.LOADING,
    S.WARMING_UP: DeviceStatus.LOADING,
    S.SHADOWING: DeviceStatus.LOADING,
    S.ACTIVATING: DeviceStatus.LOADING,
    S.COMMITTED: DeviceStatus.ACTIVE,
    S.ROLLING_BACK: DeviceStatus.LOADING,
    S.FAILED: DeviceStatus.FAILED,
}


#: The deployment event a failed assignment reports, by whether the agent will apply it
#: again by itself (a transient failure, retried with backoff and at every re-delivery of
#: its command): ``retrying`` is not an outcome; ``failed`` is sent only when the agent
#: gives up (a permanent failure, or a retry refused because its command expired).
FAILURE_EVENT: dict[bool, EventKind] = {True: EventKind.RETRYING, False: EventKind.FAILED}


def failure_event(*, will_retry: bool) -> EventKind:
    """The event a failed assignment reports (``FAILURE_EVENT``)."""
    return FAILURE_EVENT[will_retry]


def next_state(state: State, event: Event) -> State:
    """The table's answer; IllegalTransition (a bug, never input) for a missing row."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"illegal deployment transition {state} --{event}-->") from None


def resume_state(state: State) -> State:
    """Where a restarted agent picks up an assignment left in ``state`` (``RESUME``)."""
    return RESUME[state]


def is_terminal(state: State) -> bool:
    return state in TERMINAL


def give_up(count: int, limit: int) -> bool:
    """Whether ``count`` deaths in a row (deploying, or loading at start) are too many."""
    return count >= max(1, limit)


def resume_after_restart(
    state: State, *, crashes: int, max_crashes: int, unfinished: bool
) -> State | None:
    """Where a restarted agent picks up an assignment its journal left in ``state``, with
    ``crashes`` deaths in flight counted so far (this start's included); None: nothing to
    pick up. ``unfinished``: the journal's generation was not recorded as processed.

    A settled assignment is picked up only in an unfinished generation (its outcome maybe
    not reported); one in flight is given up on at ``max_crashes`` (``give_up`` row), else
    resumed where ``RESUME`` says."""
    if is_terminal(state):
        return state if unfinished else None
    if give_up(crashes, max_crashes):
        return next_state(state, Event.GIVE_UP)
    return resume_state(state)


def resume_activation(*, switched: bool, serves: bool) -> State:
    """Where an interrupted activation picks up (``ACTIVATION_RESUME``): ``switched``, the
    restored pointer names the new version (bundle and pin); ``serves``, it serves."""
    return ACTIVATION_RESUME[(switched, serves)]


def start_state(resume: State, *, bad: bool) -> State:
    """Where one run of an assignment starts: at ``resume`` (``idle`` unless resumed after
    a restart), or, for a bundle marked ``bad`` on this device, where idle's
    ``bad_bundle`` row leads before anything runs."""
    return next_state(S.IDLE, E.BAD_BUNDLE) if bad else resume
