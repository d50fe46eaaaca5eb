"""Deployment of signed commands: lifecycle table, bundle cache, downloads, journal.

Public surface:
    DeploymentManager   verifies and applies deployment commands and trust updates on its
                        worker thread (retries transient failures with a capped
                        exponential backoff, ``Inbox``/``Backoff``)
    Reporter            what the manager calls back (events, state changes)
    Command, verify_command, check_fresh              signed deployment commands
    State, Event, TRANSITIONS, next_state, resume_state   the lifecycle table and the
                                                      rules of a restart (``lifecycle``)
    GateSettings, health_gate                         the health gate before commit
    Book                                              active pointer, journal, bad bundles,
                                                      outcome; to and from ``state.json``
    BundleCache, BlobFetcher, Budget                  staging, verification, downloads
    PersistedState, load_state, save_state            ``data_dir/state.json``

Inside, one module per job: ``lifecycle`` (what next), ``install`` (one assignment
through the table) and ``steps`` (each state's side effect), ``admission`` (generation
rules), ``applying`` (one generation), ``recorder`` (persisting), ``recovery`` (after a
restart), ``worker`` (the thread), ``manager`` (wires them; commands and trust),
``fit`` (does the device's set of models fit its memory budget and disk: pure rules)
and ``memory`` (what it is fed: measured and declared memory).
"""

from typing import TYPE_CHECKING

from agent.lazy import lazy_attributes

if TYPE_CHECKING:
    from agent.deployment.book import Book
    from agent.deployment.bundles import BundleCache
    from agent.deployment.commands import Command, check_fresh, verify_command
    from agent.deployment.fetch import BlobFetcher, Budget
    from agent.deployment.gate import health_gate
    from agent.deployment.inbox import Inbox, Work, WorkKind
    from agent.deployment.install import Failure, GateSettings, Installer, Reporter
    from agent.deployment.journal import PersistedModel, PersistedState, load_state, save_state
    from agent.deployment.lifecycle import TRANSITIONS, Event, State, next_state, resume_state
    from agent.deployment.manager import DeploymentManager
    from agent.deployment.retry import Backoff

#: each public name and its module, imported when first used: ``agent.keeper``'s child
#: process imports a few of these modules, not every one (it starts for each deployment)
_LAZY = {
    "Book": "agent.deployment.book",
    "BundleCache": "agent.deployment.bundles",
    "Command": "agent.deployment.commands",
    "check_fresh": "agent.deployment.commands",
    "verify_command": "agent.deployment.commands",
    "BlobFetcher": "agent.deployment.fetch",
    "Budget": "agent.deployment.fetch",
    "health_gate": "agent.deployment.gate",
    "Inbox": "agent.deployment.inbox",
    "Work": "agent.deployment.inbox",
    "WorkKind": "agent.deployment.inbox",
    "Failure": "agent.deployment.install",
    "GateSettings": "agent.deployment.install",
    "Installer": "agent.deployment.install",
    "Reporter": "agent.deployment.install",
    "PersistedModel": "agent.deployment.journal",
    "PersistedState": "agent.deployment.journal",
    "load_state": "agent.deployment.journal",
    "save_state": "agent.deployment.journal",
    "TRANSITIONS": "agent.deployment.lifecycle",
    "Event": "agent.deployment.lifecycle",
    "State": "agent.deployment.lifecycle",
    "next_state": "agent.deployment.lifecycle",
    "resume_state": "agent.deployment.lifecycle",
    "DeploymentManager": "agent.deployment.manager",
    "Backoff": "agent.deployment.retry",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "TRANSITIONS",
    "Backoff",
    "BlobFetcher",
    "Book",
    "Budget",
    "BundleCache",
    "Command",
    "DeploymentManager",
    "Event",
    "Failure",
    "GateSettings",
    "Inbox",
    "Installer",
    "PersistedModel",
    "PersistedState",
    "Reporter",
    "State",
    "Work",
    "WorkKind",
    "check_fresh",
    "health_gate",
    "load_state",
    "next_state",
    "resume_state",
    "save_state",
    "verify_command",
]
