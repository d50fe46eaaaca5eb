"""A pipeline bundle served as one model: its steps run in-process over ``ServedModels``.

``PipelineRunner`` is a ``Runner`` (so the deployment lifecycle, the health gate, the
local API and the metrics treat it like any model) whose backend is ``pipeline``. It
owns no backend: ``infer`` checks the pipeline's inputs, then runs each step on the model
the device serves under the step's model name, holding it with ``ServedModels.use`` for
that step only, and hands tensors from step to step as numpy arrays (no HTTP, no copy).
Each step's model counts its own requests; the pipeline's ``LoadedModel`` counts the
whole run.

Rules (``docs/agent.md``):

- **Loading** (``load_pipeline``) refuses the pipeline (``ModelLoadError``, permanent)
  unless every step's model is served at exactly the step's version, is not itself a
  pipeline, and the wiring fits those models: each step feeds exactly its model's inputs,
  reads outputs its earlier steps' models have, and dtypes agree along every edge
  (``pipeline ocr 1.0: step cls needs model cls 2.0.1, which this device does not
  serve``).
- **Serving**: if a step's model later leaves the device or changes version, the
  pipeline stays loaded but each request fails with ``StepUnavailable`` (HTTP 503) naming
  the step, until that version serves again (or a new pipeline version is deployed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.errors import (
    InferenceError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    StepUnavailable,
)
from agent.runners.base import Runner, TensorSignature, check_inputs
from agent.runners.spec import CandidateSpec
from agent.serving.models import LoadedModel, ServedModels
from model_store import FRAMEWORK_PIPELINE, ModelStoreError, PipelineSpec, split_source
from model_store.pipeline import INPUT_SOURCE, load_pipeline_spec

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

BACKEND = "pipeline"


def _source(source: str) -> tuple[str, str]:
    return split_source(source)


def _take(values: dict[tuple[str, str], np.ndarray], source: str) -> np.ndarray:
    array = values.get(_source(source))
    if array is None:  # a backend that left out an output it declares
        raise InferenceError(f"{source!r} was not produced")
    return array


class PipelineRunner(Runner):
    """Runs a checked ``PipelineSpec`` over ``models``; not a plugin (no SDK, no host)."""

    key: ClassVar[str] = BACKEND
    platform: ClassVar[str] = "edgefleet_pipeline"
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(
        runtime=BACKEND, device="local", precision="f32"
    )

    def __init__(self, models: ServedModels, label: str) -> None:
        super().__init__()
        self._models = models
        self._label = label
        self._spec: PipelineSpec | None = None
        self._missing_logged: set[str] = set()

    @property
    def backend(self) -> str:
        return BACKEND

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        """Read the signed spec (must match ``metadata``) and check it against the models
        served now; ``ModelLoadError`` (one line) if it does not fit."""
        try:
            spec = load_pipeline_spec(bundle_dir / str(metadata.model_file), metadata=metadata)
        except ModelStoreError as exc:
            raise ModelLoadError(f"{self._label}: {exc}") from exc
        self.set_signature(metadata)
        _check_wiring(spec, self._models, self._label, self.inputs)
        self._spec = spec

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self._spec
        if spec is None:
            raise ModelLoadError(f"{self._label} is not loaded")
        check_inputs(self.inputs, inputs)
        values: dict[tuple[str, str], np.ndarray] = {
            (INPUT_SOURCE, name): array for name, array in inputs.items()
        }
        for step in spec.steps:
            feed = {name: _take(values, src) for name, src in step.inputs.items()}
            outputs = self._run_step(step.name, step.model, step.version, feed)
            for name, array in outputs.items():
                values[(step.name, name)] = array
        return {out.name: _take(values, out.source) for out in spec.outputs}

    def _run_step(
        self, step: str, model_name: str, version: str, feed: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        try:
            with self._models.use(model_name) as model:
                if model.version != version:
                    raise self._unavailable(step, model_name, version, f"{model.version} serves")
                try:
                    return model.infer(feed)
                except InvalidInput as exc:
                    raise InvalidInput(f"step {step!r}: {exc}") from exc
        except ModelNotFound:
            raise self._unavailable(step, model_name, version, "it is not served") from None

    def _unavailable(self, step: str, model: str, version: str, why: str) -> StepUnavailable:
        message = f"{self._label}: step {step} needs model {model} {version}, but {why}"
        if step not in self._missing_logged:  # once per step, not once per request
            self._missing_logged.add(step)
            logger.warning("%s", message)
        return StepUnavailable(message)

    def close(self) -> None:
        self._spec = None


def _check_wiring(
    spec: PipelineSpec,
    models: ServedModels,
    label: str,
    pipeline_inputs: tuple[TensorSignature, ...],
) -> None:
    """Every step's model served at its version, not a pipeline; names and dtypes fit."""
    dtypes: dict[tuple[str, str], np.dtype[Any]] = {
        (INPUT_SOURCE, s.name): s.dtype for s in pipeline_inputs
    }
    for step in spec.steps:
        model = _served(models, step.model, step.version, step.name, label)
        if model.runner.backend == BACKEND:
            raise ModelLoadError(
                f"{label}: step {step.name} runs model {step.model}, itself a pipeline "
                "(pipelines do not nest)"
            )
        wanted = {s.name: s.dtype for s in model.runner.inputs}
        if set(step.inputs) != set(wanted):
            raise ModelLoadError(
                f"{label}: step {step.name} feeds inputs {sorted(step.inputs)}, but model "
                f"{step.model} {step.version} takes {sorted(wanted)}"
            )
        for name, source in step.inputs.items():
            have = dtypes.get(_source(source))
            if have is None:
                raise ModelLoadError(
                    f"{label}: step {step.name} input {name!r} reads {source!r}, which "
                    "that step's model does not output"
                )
            if have != wanted[name]:
                raise ModelLoadError(
                    f"{label}: step {step.name} input {name!r} is {wanted[name]}, but "
                    f"{source!r} is {have}"
                )
        for out in model.runner.outputs:
            dtypes[(step.name, out.name)] = out.dtype
    for output in spec.outputs:
        have = dtypes.get(_source(output.source))
        if have is None:
            raise ModelLoadError(
                f"{label}: output {output.name!r} reads {output.source!r}, which that step's "
                "model does not output"
            )
        if str(have) != output.dtype:
            raise ModelLoadError(
                f"{label}: output {output.name!r} is declared {output.dtype}, but "
                f"{output.source!r} is {have}"
            )


def _served(models: ServedModels, name: str, version: str, step: str, label: str) -> LoadedModel:
    try:
        model = models.get(name)
    except ModelNotFound:
        model = None
    if model is None or model.version != version:
        now = "" if model is None else f" (it serves {name} {model.version})"
        raise ModelLoadError(
            f"{label}: step {step} needs model {name} {version}, which this device does not "
            f"serve{now}"
        )
    return model


def is_pipeline(metadata: Any) -> bool:
    """Whether a bundle's metadata declares a pipeline."""
    return str(metadata.framework) == FRAMEWORK_PIPELINE


def load_pipeline(bundle_dir: Path, metadata: Any, models: ServedModels) -> PipelineRunner:
    """A loaded ``PipelineRunner`` for a verified pipeline bundle (``ModelLoadError`` if
    a step's model or version is not served, or the wiring does not fit)."""
    runner = PipelineRunner(models, f"pipeline {metadata.name} {metadata.version}")
    runner.load(bundle_dir, metadata)
    return runner
