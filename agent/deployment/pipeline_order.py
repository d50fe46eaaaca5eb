"""The order a generation's assignments are installed in: pipelines after the models they
run (``agent.serving.pipeline`` loads a pipeline only over step models already served).

Which assignment is a pipeline shows before anything is downloaded: its signed file list
holds its spec, a top-level ``*.pipeline.json`` (the suffix ``model_store`` requires of a
pipeline's ``model_file``). The order is stable otherwise; a bundle that is wrongly taken
for a pipeline (an extra file so named) is only installed later, never treated otherwise.
"""

from __future__ import annotations

from model_store.metadata import PIPELINE_SUFFIX
from protocol import ModelAssignment


def looks_like_pipeline(a: ModelAssignment) -> bool:
    return any("/" not in f.path and f.path.lower().endswith(PIPELINE_SUFFIX) for f in a.files)


def pipelines_last(assignments: list[ModelAssignment]) -> list[ModelAssignment]:
    """``assignments`` with the pipelines moved after every other model (stable)."""
    return sorted(assignments, key=looks_like_pipeline)
