"""What the fit rule (``fit``) is fed: the process's resident memory around a load, and
what each loaded model counts (measured, else declared in its bundle metadata).

Measuring: the resident set size (RSS) of the agent process before the model is loaded
(selection included) and after its warm-up; the difference is the model's measured
figure. An approximation: other models serving requests meanwhile, the allocator keeping
freed memory (candidates selection loaded and closed), and memory shared with the other
models all move it; it is never below 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psutil

from agent.deployment.bundles import read_metadata
from agent.deployment.fit import Held
from agent.errors import AgentError
from agent.serving import LoadedModel, ServedModels

logger = logging.getLogger(__name__)


def process_rss() -> int | None:
    """The agent process's resident memory in bytes; None if psutil cannot tell."""
    try:
        return int(psutil.Process().memory_info().rss)
    except (psutil.Error, OSError) as exc:
        logger.debug("resident memory unavailable: %s", exc)
        return None


def grown_since(before: int | None) -> int | None:
    """The resident memory gained since ``before`` (``process_rss``), at least 0."""
    after = process_rss()
    if before is None or after is None:
        return None
    return max(0, after - before)


def declared_memory(bundle_dir: Path) -> int | None:
    """``serving.memory_bytes`` of a verified bundle's metadata (None: none, unreadable)."""
    try:
        serving = read_metadata(bundle_dir).serving
    except AgentError:
        return None
    return serving.memory_bytes if serving is not None else None


def held(model: LoadedModel) -> Held:
    """What a loaded model counts for the fit rule."""
    return Held(model.name, model.version, model.memory_bytes, declared_memory(model.bundle_dir))


def held_models(models: ServedModels) -> list[Held]:
    """What every loaded model counts, by name."""
    return [held(m) for m in models.snapshot()]
