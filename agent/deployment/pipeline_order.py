"""The order a generation's assignments are installed in: pipelines after the models they
run (``agent.serving.pipeline`` loads a pipeline only over step models already served).

Which assignment is a pipeline shows before anything is downloaded: its signed file list
holds its spec, a top-level ``*.pipeline.json`` (the suffix ``model_store`` requires of a
pipeline's ``model_file``). The order is stable otherwise; a bundle that is wrongly taken
for a pipeline (an extra file so named) is only installed later, never treated otherwise.

After a restart the committed models are restored in the same order
(``committed_pipelines_last``; the journal lists them by name): a cached bundle directory
holding a top-level ``*.pipeline.json`` comes last. Only the order is taken from the
directory listing; the bundle is verified when it is loaded, as any other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.deployment.journal import PersistedModel
from model_store.metadata import PIPELINE_SUFFIX
from protocol import ModelAssignment


def looks_like_pipeline(a: ModelAssignment) -> bool:
    return any("/" not in f.path and f.path.lower().endswith(PIPELINE_SUFFIX) for f in a.files)


def pipelines_last(assignments: list[ModelAssignment]) -> list[ModelAssignment]:
    """``assignments`` with the pipelines moved after every other model (stable)."""
    return sorted(assignments, key=looks_like_pipeline)


def _holds_pipeline(bundle_dir: Path) -> bool:
    try:
        return any(p.name.lower().endswith(PIPELINE_SUFFIX) for p in bundle_dir.iterdir())
    except OSError:
        return False


def committed_pipelines_last(
    committed: list[PersistedModel], model_dir: Callable[[str], Path]
) -> list[PersistedModel]:
    """``committed`` with those whose cached bundle (``model_dir(digest)``) is a pipeline
    moved last (stable)."""
    return sorted(committed, key=lambda pm: _holds_pipeline(model_dir(pm.bundle_digest)))
