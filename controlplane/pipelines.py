"""Pipeline versions (``model_store.pipeline``) on the control plane: their spec is checked
when the version is uploaded, and a rollout of one is refused (409) while a model version
one of its steps runs is not registered.

The control plane does not check what devices serve: each agent refuses a pipeline whose
step models it does not serve at their versions (``docs/agent.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from controlplane import crud
from controlplane.errors import BundleRejected, Conflict
from model_store import (
    FRAMEWORK_PIPELINE,
    ArtifactStore,
    BundleMetadata,
    ModelStoreError,
    PipelineSpec,
    parse_pipeline,
)
from model_store.pipeline import MAX_PIPELINE_BYTES
from protocol import FileRef


def _read_spec(store: ArtifactStore, ref: FileRef, metadata: Any) -> PipelineSpec:
    """The spec blob ``ref`` parsed against ``metadata``; BundleRejected if bad."""
    if ref.size > MAX_PIPELINE_BYTES:
        raise BundleRejected(f"{ref.path} is {ref.size} bytes; at most {MAX_PIPELINE_BYTES}")
    try:
        with store.open(ref.sha256) as fh:
            raw = bytes(fh.read(MAX_PIPELINE_BYTES + 1))
        return parse_pipeline(raw, shown_as=ref.path, metadata=metadata)
    except (OSError, ModelStoreError) as exc:
        raise BundleRejected(str(exc)) from exc


def check_uploaded_pipeline(
    store: ArtifactStore, metadata: BundleMetadata, files: Mapping[str, FileRef]
) -> None:
    """For a pipeline version being registered: its spec is valid and matches its
    ``edgefleet.json`` (BundleRejected, 400); any other version passes."""
    if metadata.framework == FRAMEWORK_PIPELINE:
        _read_spec(store, files[metadata.model_file], metadata)


def check_rollout_steps(
    session: Session, store: ArtifactStore, *, model: str, version: str
) -> None:
    """Conflict (409, one line) if ``model`` ``version`` is a pipeline and a model version
    one of its steps runs is not registered; nothing for any other version."""
    row = crud.get_model_version(session, model=model, version=version)
    if row is None or row.bundle_metadata.get("framework") != FRAMEWORK_PIPELINE:
        return  # an unknown version is the rollout's own 404
    metadata = BundleMetadata.model_validate(row.bundle_metadata)
    files = {f["path"]: FileRef.model_validate(f) for f in row.files}
    spec = _read_spec(store, files[metadata.model_file], metadata)
    for step in spec.steps:
        if crud.get_model_version(session, model=step.model, version=step.version) is None:
            raise Conflict(
                f"pipeline {model} {version}: step {step.name} needs model {step.model} "
                f"{step.version}, which is not registered; push it first"
            )
