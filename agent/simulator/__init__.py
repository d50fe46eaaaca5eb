"""The simulator: a fleet of real agents in one process, with fake hardware and traffic.

``fleet.SimulatedFleet`` runs N real ``Agent`` instances; ``latency`` slows chosen
devices down (``--slow`` rules) and ``traffic`` sends them inference requests.

The names are imported lazily: ``edge-agent``'s parser imports ``agent.simulator.options``
(the ``simulate`` options) in every agent, and ``edge-agent run`` must not load the fleet,
its traffic and capacity modules with it (a process cannot unload a module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.lazy import lazy_attributes

if TYPE_CHECKING:
    from agent.simulator.fleet import SimulatedFleet, fake_facts
    from agent.simulator.latency import SlowRule, parse_slow_rule

_LAZY = {
    "SimulatedFleet": "agent.simulator.fleet",
    "fake_facts": "agent.simulator.fleet",
    "SlowRule": "agent.simulator.latency",
    "parse_slow_rule": "agent.simulator.latency",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["SimulatedFleet", "SlowRule", "fake_facts", "parse_slow_rule"]
