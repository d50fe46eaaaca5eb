"""The simulator: a fleet of real agents in one process, with fake hardware and traffic.

``fleet.SimulatedFleet`` runs N real ``Agent`` instances; ``latency`` slows chosen
devices down (``--slow`` rules) and ``traffic`` sends them inference requests.
"""

from agent.simulator.fleet import SimulatedFleet, fake_facts
from agent.simulator.latency import SlowRule, parse_slow_rule

__all__ = ["SimulatedFleet", "SlowRule", "fake_facts", "parse_slow_rule"]
