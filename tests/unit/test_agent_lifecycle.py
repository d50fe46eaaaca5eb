"""The deployment transition table."""

from __future__ import annotations

import pytest

from agent.deployment.lifecycle import REPORTED_STATUS, TRANSITIONS, Lifecycle, Phase
from agent.errors import IllegalTransition
from protocol import DeviceStatus

HAPPY = [
    Phase.RECEIVED,
    Phase.DOWNLOADING,
    Phase.VERIFYING,
    Phase.LOADING,
    Phase.WARMING_UP,
    Phase.ACTIVATING,
    Phase.ACTIVE,
]


def test_happy_path_then_a_new_deployment() -> None:
    life = Lifecycle("t")
    for phase in HAPPY:
        life.advance(phase)
    assert life.status == DeviceStatus.ACTIVE
    life.advance(Phase.RECEIVED)


@pytest.mark.parametrize("phase", HAPPY[:-1])
def test_every_step_before_active_can_fail(phase: Phase) -> None:
    assert (phase, Phase.FAILED) in TRANSITIONS


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (Phase.IDLE, Phase.DOWNLOADING),
        (Phase.IDLE, Phase.ACTIVE),
        (Phase.DOWNLOADING, Phase.LOADING),  # skipping verification
        (Phase.RECEIVED, Phase.LOADING),
        (Phase.VERIFYING, Phase.ACTIVATING),
        (Phase.ACTIVE, Phase.FAILED),
        (Phase.FAILED, Phase.ACTIVE),
        (Phase.ACTIVE, Phase.ACTIVE),
    ],
)
def test_illegal_transitions_are_refused(start: Phase, target: Phase) -> None:
    life = Lifecycle("t", start)
    with pytest.raises(IllegalTransition, match=f"{start} -> {target}"):
        life.advance(target)
    assert life.phase == start


def test_every_phase_maps_to_a_reported_status() -> None:
    assert set(REPORTED_STATUS) == set(Phase)


def test_settled_status_reports_what_serves_now() -> None:
    from agent.deployment.manager import settled_status

    assert settled_status(serving=True, failed=True) == DeviceStatus.ACTIVE
    assert settled_status(serving=False, failed=True) == DeviceStatus.FAILED
    assert settled_status(serving=False, failed=False) == DeviceStatus.IDLE
