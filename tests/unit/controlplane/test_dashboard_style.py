"""The dashboard's colours: every state of each kind has its own, in both schemes, and
the stylesheet gives each badge class the colour of its state."""

from __future__ import annotations

import re
import typing

from controlplane.dashboard.style import CSS, FILLED, PALETTE, STATE_COLOURS, badge_colours
from controlplane.rollouts.plan import RolloutDeviceStatus
from controlplane.rollouts.states import RolloutState
from controlplane.schemas import BatchPublic
from protocol import DeviceStatus

KINDS = {
    "rollout": {s.value for s in RolloutState},
    "rollout device": {s.value for s in RolloutDeviceStatus},
    "batch": set(typing.get_args(BatchPublic.model_fields["state"].annotation)),
    "device": {"unknown", *(s.value for s in DeviceStatus)},
}


def test_each_state_of_a_kind_has_its_own_colour() -> None:
    for kind, states in KINDS.items():
        colours = STATE_COLOURS[kind]
        assert set(colours) == states, kind  # every state, and no other
        assert len(set(colours.values())) == len(colours), f"{kind}: {colours}"
    assert STATE_COLOURS["rollout"]["paused"] != STATE_COLOURS["rollout"]["running"]
    assert STATE_COLOURS["rollout"]["running"] != STATE_COLOURS["rollout device"]["updating"]


def test_each_colour_has_a_light_and_a_dark_shade() -> None:
    for name, (light, dark) in PALETTE.items():
        assert re.fullmatch(r"#[0-9a-f]{6}", light) and re.fullmatch(r"#[0-9a-f]{6}", dark)
        assert light != dark, name
        assert f"--c-{name}: {light};" in CSS and f"--c-{name}: {dark};" in CSS
    assert "@media (prefers-color-scheme: dark)" in CSS


def test_the_stylesheet_colours_each_badge_as_its_state() -> None:
    for state, colour in badge_colours().items():
        rule = re.search(rf"\.b-{state} \{{([^}}]*)\}}", CSS)
        assert rule is not None, state
        assert f"var(--c-{colour})" in rule.group(1), (state, rule.group(1))
        assert ("background" in rule.group(1)) == (state in FILLED), state
    assert {"failed", "regressed", "gate"} <= FILLED  # what must stand out is filled
