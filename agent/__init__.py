"""EdgeFleet edge agent.

Public surface:
    Agent, AGENT_VERSION               one device (``agent.agent``)
    SimulatedFleet, fake_facts         N agents in one process (``agent.simulator``)
    AgentConfig, load_config, config_from_mapping   settings (``agent.config``)
    errors: AgentError and its hierarchy (``agent.errors``)

Sub-packages, a folder per part (import direction held by import-linter, top to bottom):
``agent.simulator`` (many agents in one process), ``agent.deployment`` (signed commands,
lifecycle table, bundle cache, downloads, journal, recovery), ``agent.selection``
(measured backend choice), ``agent.serving`` (served models, local OIP API),
``agent.link`` (MQTT and the report spool), ``agent.telemetry`` (stats, host figures,
heartbeats, Prometheus text), ``agent.runners`` (the runner interface; ``plugins/``, one
file per backend). At the top level only the process shell: ``agent.agent``, ``cli``,
``config``, ``errors``, ``trust_store`` (the pinned trust chain), ``sdnotify``,
``fsutil``. ``Agent``, ``SimulatedFleet`` and the configuration are imported lazily so
that ``agent.errors`` stays cheap to import, and the keeper's child process
(``agent.keeper``), which starts for each deployment, loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from agent.lazy import lazy_attributes

if TYPE_CHECKING:
    from agent.agent import AGENT_VERSION, Agent
    from agent.config import AgentConfig, config_from_mapping, load_config
    from agent.simulator import SimulatedFleet, fake_facts

_LAZY = {
    "AgentConfig": "agent.config",
    "config_from_mapping": "agent.config",
    "load_config": "agent.config",
    "Agent": "agent.agent",
    "AGENT_VERSION": "agent.agent",
    "SimulatedFleet": "agent.simulator",
    "fake_facts": "agent.simulator",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
