"""The agent's persisted state (``data_dir/state.json``), written atomically.

One file, so that the active pointer and the deployment journal change together in one
atomic write (temp file, fsync, rename, fsync of the directory):

- the highest signed deployment command accepted (``accepted_generation`` and the sha256
  of its payload, ``accepted_digest``), written *before* the agent acts on it, so a
  replayed older or altered command is refused even after a restart;
- ``generation``: the highest generation processed, and its outcome (``last_error``,
  ``failed``, ``retryable``);
- ``models``: the **active pointer**, the committed version of each model name that a
  restarted agent serves (after re-verifying its bundle); ``previous``: the version each
  name ran before, kept in the cache for rollback;
- ``journal``: the generation being applied (``journal_generation``) and one
  ``AssignmentJournal`` per model assignment with its lifecycle state, persisted before
  each step's side effect, and ``crashes``: how often the agent died while the
  assignment was in flight (the crash-loop counter);
- ``bad``: bundles given up on this device after too many crashes, each with the
  generation it was given up in: not tried again until a newer generation arrives;
- ``stopped_cleanly``: the last process stopped on SIGTERM, not by dying: what it left
  in flight is resumed without counting a crash;
- ``restoring``: starts in a row that began loading each committed bundle and died before
  it served; at the crash limit that version is marked bad and the previous one serves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.deployment.lifecycle import State
from agent.fsutil import write_atomically
from protocol import ModelAssignment

logger = logging.getLogger(__name__)

STATE_FILENAME = "state.json"


class PersistedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    bundle_digest: str
    backend: str
    deployment_id: int | None = None
    #: median warm-up latency measured by the health gate (the baseline of the next one)
    gate_p50_ms: float | None = None
    #: the backend the operator pinned for it (then restored on that backend, unmeasured)
    pin: str | None = None
    #: the operator's re-selection counter it was selected under (``ModelAssignment``)
    reselect: int = Field(default=0, exclude_if=lambda v: v == 0)  # 0: not written


class AssignmentJournal(BaseModel):
    """One assignment of the generation in progress and where its lifecycle stands."""

    model_config = ConfigDict(frozen=True)

    assignment: ModelAssignment
    state: State = State.IDLE
    crashes: int = 0
    #: why it failed, and whether that failure was transient (worth a retry)
    reason: str | None = None
    transient: bool = False


class BadBundle(BaseModel):
    model_config = ConfigDict(frozen=True)

    bundle_digest: str
    generation: int
    reason: str


class PersistedState(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 3
    #: the highest accepted command and the sha256 (hex) of its signed payload
    accepted_generation: int = -1
    accepted_digest: str | None = None
    #: the highest generation processed (applied, successfully or not)
    generation: int = -1
    models: list[PersistedModel] = Field(default_factory=list)
    previous: list[PersistedModel] = Field(default_factory=list)
    #: the outcome of ``generation``: its first failure, whether it failed, and whether a
    #: failure was transient (then it is applied again, e.g. when re-delivered)
    last_error: str | None = None
    failed: bool = False
    retryable: bool = False
    journal_generation: int = -1
    journal: list[AssignmentJournal] = Field(default_factory=list)
    bad: list[BadBundle] = Field(default_factory=list)
    #: written by a clean stop (SIGTERM): an assignment in flight then is no crash
    stopped_cleanly: bool = False
    #: committed bundle digest -> starts in a row that died while loading it
    restoring: dict[str, int] = Field(default_factory=dict)


def load_state(data_dir: Path) -> PersistedState:
    """The persisted state, or a fresh one if none (or an unreadable one, logged)."""
    path = data_dir / STATE_FILENAME
    try:
        return PersistedState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return PersistedState()
    except (OSError, ValidationError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, str(exc).splitlines()[0])
        return PersistedState()


def save_state(data_dir: Path, state: PersistedState) -> None:
    """Write ``state.json`` atomically (see ``write_atomically``)."""
    payload = json.dumps(state.model_dump(mode="json"), indent=2).encode("utf-8")
    write_atomically(data_dir / STATE_FILENAME, payload)
