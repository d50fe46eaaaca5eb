"""Parts of a light simulated device: its synthetic figures follow the latency knob, its
state survives a restart (and a damaged file starts it afresh), the bundles it holds are
bounded like a real agent's cache, and the process refuses a fleet it cannot open the
files for."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from agent.deployment.book import Accepted, Outcome
from agent.errors import AgentConfigError
from agent.simulator import capacity
from agent.simulator.light.state import HELD_BUNDLES, STATE_FILE, LightState
from agent.simulator.light.traffic import BASE_MS, SyntheticTraffic
from protocol import ActiveModel


def test_synthetic_figures_count_the_rate_and_follow_the_knob() -> None:
    knob = lambda index, name, version: 40.0 if version == "2.0" else 0.0  # noqa: E731
    traffic = SyntheticTraffic(3, rate_hz=10.0, knob=knob)
    traffic.serve("det", "1.0", "onnxruntime:cpu")
    traffic.advance(1.25)  # 12.5 requests: 12 now, the half carried over
    traffic.advance(0.85)  # 8.5 + 0.5
    (fast,) = traffic.metrics()
    assert (fast.name, fast.version, fast.requests, fast.errors) == ("det", "1.0", 21, 0)
    assert fast.p50_ms is not None and BASE_MS / 2 < fast.p50_ms < BASE_MS * 2
    traffic.serve("det", "2.0", "onnxruntime:cpu")  # the old version reported once more
    traffic.advance(2.0)
    by_version = {m.version: m for m in traffic.metrics()}
    assert by_version["2.0"].requests == 20
    assert by_version["2.0"].p95_ms is not None and by_version["2.0"].p95_ms >= 40.0
    assert by_version["1.0"].requests == 21  # cumulative, final
    traffic.advance(1.0)
    assert [m.version for m in traffic.metrics()] == ["2.0"]  # 1.0 drained
    traffic.stop("det")
    traffic.advance(1.0)
    assert traffic.serving == []


def test_state_round_trip(tmp_path: Path) -> None:
    state = LightState()
    state.book.accepted = Accepted(7, "ab" * 32)
    state.book.outcome = Outcome(7, "det 1.0: boom", failed=True)
    state.active["det"] = ActiveModel(
        name="det", version="1.0", bundle_digest="cd" * 32, backend="onnxruntime:cpu"
    )
    state.hold("cd" * 32)
    state.save(tmp_path)
    again = LightState.load(tmp_path, "d1")
    assert again.book.accepted == state.book.accepted
    assert again.book.outcome == state.book.outcome
    assert again.active == state.active and again.held == ["cd" * 32]


def test_a_damaged_state_file_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / STATE_FILE).write_text('{"accepted": 3')
    state = LightState.load(tmp_path, "d1")
    assert state.book.accepted.generation == -1 and not state.active
    assert "unreadable, starting afresh" in caplog.text


def test_held_bundles_are_bounded_but_keep_the_active_one() -> None:
    state = LightState()
    digests = [f"{i:02d}" * 32 for i in range(HELD_BUNDLES + 2)]
    state.active["det"] = ActiveModel(
        name="det", version="1", bundle_digest=digests[0], backend="onnxruntime:cpu"
    )
    for digest in digests:
        state.hold(digest)
    assert len(state.held) == HELD_BUNDLES
    assert digests[0] in state.held and digests[-1] == state.held[-1]


def test_max_full_agents_keeps_every_descriptor_below_select_limit() -> None:
    worst = capacity.PROCESS_RESERVE_FDS + capacity.MAX_FULL_AGENTS * capacity.FULL_AGENT_FDS
    assert worst <= capacity.SELECT_FD_LIMIT
    capacity.check_full_count(capacity.MAX_FULL_AGENTS)
    with pytest.raises(AgentConfigError, match="use --light"):
        capacity.check_full_count(capacity.MAX_FULL_AGENTS + 1)


def test_the_file_limit_is_raised_as_far_as_needed(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = capacity.light_files_needed(1000)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this box's hard limit {hard} is below {needed}")
    script = (
        "import resource; from agent.simulator.capacity import raise_file_limit\n"
        "raise_file_limit(1000); print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    low = subprocess.run(
        ["bash", "-c", f"ulimit -Sn 256; exec {sys.executable} -c '{script}'"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(low.stdout) >= needed


def test_a_fleet_beyond_the_hard_limit_is_refused() -> None:
    script = (
        "from agent.errors import AgentConfigError\n"
        "from agent.simulator.capacity import raise_file_limit\n"
        "try:\n    raise_file_limit(1000)\n"
        "except AgentConfigError as exc:\n    print(exc)"
    )
    out = subprocess.run(
        ["bash", "-c", f"ulimit -n 512; exec {sys.executable} -c '{script}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("1000 light devices need about 4256 open files, but this process")
    assert "at most 512 (ulimit -Hn)" in out
