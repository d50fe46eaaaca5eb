"""EdgeFleet edge agent.

Public surface:
    Agent, AGENT_VERSION               one device (``agent.agent``)
    SimulatedFleet, fake_facts         N agents in one process (``agent.simulator``)
    AgentConfig, load_config, config_from_mapping   settings (``agent.config``)
    errors: AgentError and its hierarchy (``agent.errors``)

Subpackages: ``agent.runners`` (backend plugins), ``agent.deployment`` (signed commands,
lifecycle table, bundle cache, downloads, journal); ``agent.trust_store`` (the trust
document, its bootstrap from the pinned root keys, updates and persistence). ``Agent``
and ``SimulatedFleet`` are imported lazily so that ``agent.config`` / ``agent.errors``
stay cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig, config_from_mapping, load_config
from agent.errors import (
    AgentConfigError,
    AgentError,
    CommandRefused,
    DeploymentError,
    DownloadError,
    IllegalTransition,
    InferenceError,
    InvalidInput,
    LinkError,
    ModelLoadError,
    ModelNotFound,
    RunnerError,
    RunnerUnavailable,
    TransientDownloadError,
    TrustFetchError,
    TrustStoreError,
    UnmetConstraints,
    VerificationError,
)

if TYPE_CHECKING:
    from agent.agent import AGENT_VERSION, Agent
    from agent.simulator import SimulatedFleet, fake_facts

_LAZY = {
    "Agent": "agent.agent",
    "AGENT_VERSION": "agent.agent",
    "SimulatedFleet": "agent.simulator",
    "fake_facts": "agent.simulator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")


__all__ = [
    "AGENT_VERSION",
    "Agent",
    "AgentConfig",
    "AgentConfigError",
    "AgentError",
    "CommandRefused",
    "DeploymentError",
    "DownloadError",
    "IllegalTransition",
    "InferenceError",
    "InvalidInput",
    "LinkError",
    "ModelLoadError",
    "ModelNotFound",
    "RunnerError",
    "RunnerUnavailable",
    "SimulatedFleet",
    "TransientDownloadError",
    "TrustFetchError",
    "TrustStoreError",
    "UnmetConstraints",
    "VerificationError",
    "config_from_mapping",
    "fake_facts",
    "load_config",
]
