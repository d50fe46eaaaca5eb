"""Deployment of desired states: lifecycle table, bundle cache, downloads, journal.

Public surface:
    DeploymentManager   applies desired states on its worker thread (retries transient
                        failures with a capped exponential backoff, ``Inbox``/``Backoff``)
    Reporter            what the manager calls back (events, state changes)
    Lifecycle, Phase, TRANSITIONS, check_transition   the transition table
    BundleCache, BlobFetcher                          staging, verification, downloads
    PersistedState, load_state, save_state            ``data_dir/state.json``
"""

from agent.deployment.bundles import BundleCache
from agent.deployment.fetch import BlobFetcher
from agent.deployment.inbox import Inbox
from agent.deployment.journal import PersistedModel, PersistedState, load_state, save_state
from agent.deployment.lifecycle import TRANSITIONS, Lifecycle, Phase, check_transition
from agent.deployment.manager import DeploymentManager, Reporter
from agent.deployment.retry import Backoff

__all__ = [
    "TRANSITIONS",
    "Backoff",
    "BlobFetcher",
    "BundleCache",
    "DeploymentManager",
    "Inbox",
    "Lifecycle",
    "PersistedModel",
    "PersistedState",
    "Phase",
    "Reporter",
    "check_transition",
    "load_state",
    "save_state",
]
