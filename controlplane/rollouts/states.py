"""The rollout states and what each allows: the one table the API, the driver and the
dashboard read (pure: no I/O, no database).

A rollout is ``running`` (the driver steps it), ``paused`` (nothing new starts; an
operator may resume it), ``completed`` or ``aborted`` (both final). :data:`TABLE` gives,
per state, whether it is *active* (it holds its model in its fleet: no other rollout of
that model may start there, and a rollback aborts it first), whether the driver *steps*
it, and the moves it allows with the state each leads to:

============  ======  ======  ====================================================
state         active  driven  moves (-> resulting state)
============  ======  ======  ====================================================
running       yes     yes     pause -> paused, abort -> aborted,
                              complete -> completed, auto_pause -> paused,
                              auto_abort -> aborted
paused        yes     no      resume -> running, abort -> aborted
completed     no      no      rollback -> completed
aborted       no      no      rollback -> aborted
============  ======  ======  ====================================================

Operator moves are :class:`Action` (``pause``, ``resume``, ``abort``, ``rollback``: the
URL segments of the API and the dashboard); the driver's are :class:`DriverMove`
(``complete``, ``auto_pause``, ``auto_abort``: what the policy decided). A rollback also
needs devices to send back (:func:`controlplane.rollouts.rows.to_roll_back`: each to its
own previous version); the resulting state is the one the rolled-back rollout stays in
(the rollback is a new rollout that starts ``running``). A running or paused rollout is
rolled back by aborting it: an abort sends every device it updated back to its own
previous version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "ACTIVE_STATES",
    "DONE",
    "DRIVEN_STATES",
    "TABLE",
    "Action",
    "DriverMove",
    "Move",
    "NotAllowed",
    "RolloutState",
    "StateRow",
    "actions",
    "after",
    "allows",
    "is_driven",
    "states_allowing",
]


class RolloutState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"


class Action(StrEnum):
    """What an operator may do to a rollout (API routes and dashboard forms)."""

    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    ROLLBACK = "rollback"


class DriverMove(StrEnum):
    """What the driver may do to a rollout it steps, as the policy decided."""

    COMPLETE = "complete"
    AUTO_PAUSE = "auto_pause"
    AUTO_ABORT = "auto_abort"


Move = Action | DriverMove


class NotAllowed(ValueError):
    """A move the rollout's state does not allow (the API answers 409)."""


@dataclass(frozen=True)
class StateRow:
    """One state of :data:`TABLE`: see the module docstring."""

    active: bool
    driven: bool
    moves: Mapping[Move, RolloutState]


_S = RolloutState

#: Every rollout state, its flags and the moves it allows (with their resulting state).
TABLE: Mapping[RolloutState, StateRow] = MappingProxyType(
    {
        _S.RUNNING: StateRow(
            active=True,
            driven=True,
            moves={
                Action.PAUSE: _S.PAUSED,
                Action.ABORT: _S.ABORTED,
                DriverMove.COMPLETE: _S.COMPLETED,
                DriverMove.AUTO_PAUSE: _S.PAUSED,
                DriverMove.AUTO_ABORT: _S.ABORTED,
            },
        ),
        _S.PAUSED: StateRow(
            active=True,
            driven=False,
            moves={
                Action.RESUME: _S.RUNNING,
                Action.ABORT: _S.ABORTED,
            },
        ),
        _S.COMPLETED: StateRow(active=False, driven=False, moves={Action.ROLLBACK: _S.COMPLETED}),
        _S.ABORTED: StateRow(active=False, driven=False, moves={Action.ROLLBACK: _S.ABORTED}),
    }
)

#: States in which no other rollout of the same model may start in the fleet.
ACTIVE_STATES: tuple[str, ...] = tuple(s.value for s, row in TABLE.items() if row.active)
#: States the driver steps every tick.
DRIVEN_STATES: tuple[str, ...] = tuple(s.value for s, row in TABLE.items() if row.driven)

#: The words for an action done to a rollout ("paused by ...", "can be paused"); a
#: rollback makes a new rollout rather than changing this one's state.
DONE: Mapping[Action, str] = MappingProxyType(
    {Action.PAUSE: "paused", Action.RESUME: "resumed", Action.ABORT: "aborted"}
)


def allows(state: str, move: Move) -> bool:
    """Whether a rollout in ``state`` may make ``move`` (an unknown state allows none)."""
    try:
        return move in TABLE[RolloutState(state)].moves
    except ValueError:
        return False


def after(state: str, move: Move) -> RolloutState:
    """The state a rollout in ``state`` is in after ``move``; NotAllowed if not allowed."""
    if not allows(state, move):
        raise NotAllowed(f"a {state} rollout cannot {move.value}")
    return TABLE[RolloutState(state)].moves[move]


def is_driven(state: str) -> bool:
    """Whether the driver steps a rollout in ``state``."""
    return state in DRIVEN_STATES


def states_allowing(move: Move) -> tuple[RolloutState, ...]:
    """The states that allow ``move``, in :class:`RolloutState` order."""
    return tuple(s for s, row in TABLE.items() if move in row.moves)


def actions(state: str, *, has_previous: bool) -> list[Action]:
    """The operator actions a rollout in ``state`` allows, in :class:`Action` order (a
    rollback only with devices to send back to their previous versions)."""
    return [a for a in Action if allows(state, a) and (a is not Action.ROLLBACK or has_previous)]
