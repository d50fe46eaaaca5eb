"""Light simulated devices: the agent's wire code, many devices on one event loop, no
models (``LightFleet``; see ``device`` for what is real and what is faked)."""

from agent.simulator.light.fleet import LightFleet

__all__ = ["LightFleet"]
