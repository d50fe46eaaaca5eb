"""Simulated devices get a memory budget: three quarters of their simulated RAM by
default, one for every device (``agent_config``), or one per device index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.deployment.fit import MIB, memory_budget
from agent.simulator import SimulatedFleet
from agent.simulator.fleet import fake_facts

GIB = 1024 * MIB


def _fleet(tmp_path: Path, **knobs: Any) -> SimulatedFleet:
    return SimulatedFleet(
        count=3,
        fleet="lab",
        broker_url="mqtt://127.0.0.1:1",
        control_plane_url="http://127.0.0.1:1",
        data_dir=tmp_path,
        root_keys=[tmp_path / "root.pub"],
        **knobs,
    )


def test_the_default_budget_is_three_quarters_of_the_simulated_ram(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    budgets = [memory_budget(a.config.memory_budget_mb, a.hardware) for a in fleet.agents]
    # x86-avx2 16 GiB, xeon-amx 256 GiB, rpi5 8 GiB
    assert budgets == [12 * GIB, 192 * GIB, 6 * GIB]
    assert [a.hardware["ram_bytes"] for a in fleet.agents] == [
        fake_facts(i)["ram_bytes"] for i in range(3)
    ]


def test_a_budget_for_every_device_or_per_device(tmp_path: Path) -> None:
    every = _fleet(tmp_path, agent_config={"memory_budget_mb": 64})
    assert [a.config.memory_budget_mb for a in every.agents] == [64, 64, 64]
    per = _fleet(
        tmp_path,
        agent_config={"memory_budget_mb": 64},
        memory_budget_mb=lambda i: 32 if i == 2 else None,
    )
    assert [a.config.memory_budget_mb for a in per.agents] == [64, 64, 32]
