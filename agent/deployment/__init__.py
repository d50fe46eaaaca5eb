"""Deployment of signed commands: lifecycle table, bundle cache, downloads, journal.

Public surface:
    DeploymentManager   verifies and applies deployment commands and trust updates on its
                        worker thread (retries transient failures with a capped
                        exponential backoff, ``Inbox``/``Backoff``)
    Reporter            what the manager calls back (events, state changes)
    Command, verify_command, check_fresh              signed deployment commands
    Lifecycle, Phase, TRANSITIONS, check_transition   the transition table
    BundleCache, BlobFetcher, Budget                  staging, verification, downloads
    PersistedState, load_state, save_state            ``data_dir/state.json``
"""

from agent.deployment.bundles import BundleCache
from agent.deployment.commands import Command, check_fresh, verify_command
from agent.deployment.fetch import BlobFetcher, Budget
from agent.deployment.inbox import Inbox, Work, WorkKind
from agent.deployment.install import Failure, Installer, Reporter
from agent.deployment.journal import PersistedModel, PersistedState, load_state, save_state
from agent.deployment.lifecycle import TRANSITIONS, Lifecycle, Phase, check_transition
from agent.deployment.manager import DeploymentManager
from agent.deployment.retry import Backoff

__all__ = [
    "TRANSITIONS",
    "Backoff",
    "BlobFetcher",
    "Budget",
    "BundleCache",
    "Command",
    "DeploymentManager",
    "Failure",
    "Inbox",
    "Installer",
    "Lifecycle",
    "PersistedModel",
    "PersistedState",
    "Phase",
    "Reporter",
    "Work",
    "WorkKind",
    "check_fresh",
    "check_transition",
    "load_state",
    "save_state",
    "verify_command",
]
