"""The agent's persisted state (``data_dir/state.json``), written atomically.

Holds the highest desired-state generation processed, the active models and the
outcome of that generation (``last_error``, ``failed``, ``retryable``), so a restarted
agent serves the same models (after re-verifying their bundles), still reports the
failure, ignores a retained desired state it has already applied, and applies again one
that failed for a transient reason.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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

    schema_version: int = 1
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
    """Write ``state.json`` atomically: temp file, fsync, rename, fsync the directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILENAME
    tmp = path.with_suffix(".json.tmp")
    payload = json.dumps(state.model_dump(mode="json"), indent=2).encode("utf-8")
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
