"""The table of rollout states: every state x move, allowed or not, and where it leads."""

from __future__ import annotations

import pytest

from controlplane.rollouts import rows
from controlplane.rollouts.states import (
    ACTIVE_STATES,
    DRIVEN_STATES,
    TABLE,
    Action,
    DriverMove,
    Move,
    NotAllowed,
    RolloutState,
    actions,
    after,
    allows,
    is_driven,
    states_allowing,
)

R, P, C, A = (
    RolloutState.RUNNING,
    RolloutState.PAUSED,
    RolloutState.COMPLETED,
    RolloutState.ABORTED,
)

#: (state, move) -> resulting state, or None where the state refuses the move.
EXPECTED: dict[tuple[RolloutState, Move], RolloutState | None] = {
    (R, Action.PAUSE): P,
    (R, Action.RESUME): None,
    (R, Action.ABORT): A,
    (R, Action.ROLLBACK): None,  # abort it: that sends its devices back
    (R, DriverMove.COMPLETE): C,
    (R, DriverMove.AUTO_PAUSE): P,
    (R, DriverMove.AUTO_ABORT): A,
    (P, Action.PAUSE): None,
    (P, Action.RESUME): R,
    (P, Action.ABORT): A,
    (P, Action.ROLLBACK): None,
    (P, DriverMove.COMPLETE): None,
    (P, DriverMove.AUTO_PAUSE): None,
    (P, DriverMove.AUTO_ABORT): None,
    (C, Action.PAUSE): None,
    (C, Action.RESUME): None,
    (C, Action.ABORT): None,
    (C, Action.ROLLBACK): C,
    (C, DriverMove.COMPLETE): None,
    (C, DriverMove.AUTO_PAUSE): None,
    (C, DriverMove.AUTO_ABORT): None,
    (A, Action.PAUSE): None,
    (A, Action.RESUME): None,
    (A, Action.ABORT): None,
    (A, Action.ROLLBACK): A,
    (A, DriverMove.COMPLETE): None,
    (A, DriverMove.AUTO_PAUSE): None,
    (A, DriverMove.AUTO_ABORT): None,
}


def test_expected_covers_every_state_and_move() -> None:
    moves: list[Move] = [*Action, *DriverMove]
    assert set(EXPECTED) == {(s, m) for s in RolloutState for m in moves}
    assert set(TABLE) == set(RolloutState)


@pytest.mark.parametrize(("state", "move"), list(EXPECTED), ids=lambda v: str(v))
def test_every_state_and_move(state: RolloutState, move: Move) -> None:
    expected = EXPECTED[(state, move)]
    assert allows(state.value, move) is (expected is not None)
    if expected is None:
        with pytest.raises(NotAllowed, match=f"a {state.value} rollout cannot {move.value}"):
            after(state.value, move)
    else:
        assert after(state.value, move) is expected


def test_unknown_state_allows_nothing() -> None:
    assert not any(allows("exploded", m) for m in [*Action, *DriverMove])
    assert actions("exploded", has_previous=True) == []
    assert not is_driven("exploded")


def test_active_and_driven_states() -> None:
    assert ACTIVE_STATES == ("running", "paused")
    assert rows.ACTIVE_STATES == ACTIVE_STATES  # the database queries read the table
    assert DRIVEN_STATES == ("running",)
    assert [s for s in RolloutState if is_driven(s)] == [R]


def test_states_allowing_in_enum_order() -> None:
    """The order the 409 messages name them in ("only a running or paused rollout")."""
    assert states_allowing(Action.PAUSE) == (R,)
    assert states_allowing(Action.RESUME) == (P,)
    assert states_allowing(Action.ABORT) == (R, P)
    assert states_allowing(Action.ROLLBACK) == (C, A)
    assert states_allowing(DriverMove.COMPLETE) == (R,)


@pytest.mark.parametrize(
    ("state", "has_previous", "expected"),
    [
        (R, True, [Action.PAUSE, Action.ABORT]),
        (R, False, [Action.PAUSE, Action.ABORT]),
        (P, True, [Action.RESUME, Action.ABORT]),
        (P, False, [Action.RESUME, Action.ABORT]),
        (C, True, [Action.ROLLBACK]),
        (C, False, []),
        (A, True, [Action.ROLLBACK]),
        (A, False, []),
    ],
)
def test_operator_actions(state: RolloutState, has_previous: bool, expected: list[Action]) -> None:
    """What the dashboard offers: the table's operator moves (a rollback needs devices to
    send back)."""
    assert actions(state.value, has_previous=has_previous) == expected
