"""The agent's persisted state (``data_dir/state.json``), written atomically.

Holds the highest signed deployment command accepted (``accepted_generation`` and the
sha256 of its payload, ``accepted_digest``: written *before* the agent acts on it, so a
replayed older or altered command is refused even after a restart), the highest
generation processed, the active models and the outcome of that generation
(``last_error``, ``failed``, ``retryable``). A restarted agent serves the same models
(after re-verifying their bundles), still reports the failure, ignores a re-delivered
command it has already applied, and applies again one that failed for a transient reason
or was interrupted (accepted but not processed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.fsutil import write_atomically

logger = logging.getLogger(__name__)

STATE_FILENAME = "state.json"


class PersistedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    bundle_digest: str
    backend: str
    deployment_id: int | None = None


class PersistedState(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 2
    #: the highest accepted command and the sha256 (hex) of its signed payload
    accepted_generation: int = -1
    accepted_digest: str | None = None
    #: the highest generation processed (applied, successfully or not)
    generation: int = -1
    models: list[PersistedModel] = Field(default_factory=list)
    #: the outcome of ``generation``: its first failure, whether it failed, and whether a
    #: failure was transient (then it is applied again, e.g. when re-delivered)
    last_error: str | None = None
    failed: bool = False
    retryable: bool = False


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
