"""Pipeline bundles: one model served on a device that runs other models it serves, in turn.

A pipeline bundle has ``framework: "pipeline"``; its ``model_file`` is a spec ending in
``.pipeline.json`` (signed with the bundle like any model file)::

    {
      "inputs":  [{"name": "image", "dtype": "float32", "shape": [1, 3, 32, 32]}],
      "steps": [
        {"name": "det", "model": "det", "version": "1.4.0", "inputs": {"x": "input/image"}},
        {"name": "cls", "model": "cls", "version": "2.0.1",
         "inputs": {"crops": "det/crops", "image": "input/image"}}
      ],
      "outputs": [{"name": "label", "dtype": "int64", "shape": [1], "from": "cls/label"}]
    }

Each step runs one model the device serves, at exactly that version, and feeds each of
that model's inputs from a *source*: ``input/NAME`` (a pipeline input) or ``STEP/OUTPUT``
(an output of an earlier step; the output name is everything after the first ``/``).
Each pipeline output comes ``from`` a source. Steps run in the order listed, so a forward
reference, a cycle or a reference to an unknown step is refused here, as are duplicate or
bad names, a step named ``input`` and a step that runs the pipeline itself. The bundle's
``edgefleet.json`` ``inputs``/``outputs`` are the spec's tensor specs (without ``from``).

Whether each step's model and version is served, and whether the tensor names and dtypes
fit those models, only a device can tell: the agent checks that when it loads the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from model_store.errors import BundleError
from model_store.metadata import (
    FRAMEWORK_PIPELINE,
    NAME_PATTERN,
    PIPELINE_SUFFIX,
    TensorSpec,
    validation_summary,
)
from model_store.paths import read_small_file
from model_store.strict_json import StrictJson

#: The source prefix of a pipeline input (so no step may be called this).
INPUT_SOURCE = "input"
MAX_PIPELINE_BYTES = 256 * 1024
MAX_STEPS = 32

__all__ = [
    "FRAMEWORK_PIPELINE",
    "INPUT_SOURCE",
    "PIPELINE_SUFFIX",
    "PipelineOutput",
    "PipelineSpec",
    "PipelineStep",
    "check_pipeline",
    "check_pipeline_bundle",
    "load_pipeline_spec",
    "parse_pipeline",
    "split_source",
]


def split_source(source: str) -> tuple[str, str]:
    """``"det/boxes"`` -> ``("det", "boxes")``; ``("input", NAME)`` for a pipeline input.
    ValueError if it is not ``STEP/TENSOR``."""
    step, sep, tensor = source.partition("/")
    if not sep or not step or not tensor:
        raise ValueError(f"source {source!r} must be 'input/NAME' or 'STEP/OUTPUT'")
    return step, tensor


def _boring(value: str) -> str:
    if NAME_PATTERN.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} must be 1-128 letters, digits, '.', '_', '+', '-', "
            "starting with a letter or digit"
        )
    return value


class PipelineStep(BaseModel):
    """One step: a model at an exact version, each of its inputs fed from a source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model: str
    version: str
    inputs: dict[str, str] = Field(min_length=1)

    @field_validator("name", "model", "version")
    @classmethod
    def _names(cls, value: str) -> str:
        return _boring(value)

    @field_validator("inputs")
    @classmethod
    def _sources(cls, value: dict[str, str]) -> dict[str, str]:
        for tensor, source in value.items():
            if not tensor:
                raise ValueError("an input name is empty")
            split_source(source)
        return value


class PipelineOutput(TensorSpec):
    """A pipeline output: its tensor spec and the source it comes ``from``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        split_source(value)
        return value

    def spec(self) -> TensorSpec:
        return TensorSpec(name=self.name, dtype=self.dtype, shape=self.shape)


class _Input(TensorSpec):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PipelineSpec(BaseModel):
    """The content of a ``*.pipeline.json``; ``check_pipeline`` holds its wiring rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[_Input] = Field(min_length=1)
    steps: list[PipelineStep] = Field(min_length=1, max_length=MAX_STEPS)
    outputs: list[PipelineOutput] = Field(min_length=1)

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name=i.name, dtype=i.dtype, shape=i.shape) for i in self.inputs]

    def output_specs(self) -> list[TensorSpec]:
        return [o.spec() for o in self.outputs]

    def models(self) -> list[tuple[str, str]]:
        """The (model, version) pairs the steps run, in step order, each once."""
        return list(dict.fromkeys((s.model, s.version) for s in self.steps))


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if not name:
            raise BundleError(f"invalid pipeline: a {what} name is empty")
        if name in seen:
            raise BundleError(f"invalid pipeline: duplicate {what} {name!r}")
        seen.add(name)


def check_pipeline(spec: PipelineSpec, *, name: str | None = None) -> None:
    """The wiring rules: unique names, every source defined before it is used (pipeline
    inputs, earlier steps), no step named ``input``, no step running pipeline ``name``."""
    _unique([i.name for i in spec.inputs], "input")
    _unique([o.name for o in spec.outputs], "output")
    _unique([s.name for s in spec.steps], "step")
    inputs = {i.name for i in spec.inputs}
    earlier: set[str] = set()
    all_steps = {s.name for s in spec.steps}

    def check_source(source: str, where: str) -> None:
        step, tensor = split_source(source)
        if step == INPUT_SOURCE:
            if tensor not in inputs:
                raise BundleError(
                    f"invalid pipeline: {where} reads {source!r}, but the pipeline has no "
                    f"input {tensor!r}"
                )
        elif step not in all_steps:
            raise BundleError(f"invalid pipeline: {where} reads {source!r}: no step {step!r}")
        elif step not in earlier:
            raise BundleError(
                f"invalid pipeline: {where} reads {source!r}, but step {step!r} does not run "
                "before it (steps run in the order listed; no cycles)"
            )

    for step in spec.steps:
        if step.name == INPUT_SOURCE:
            raise BundleError(f"invalid pipeline: a step may not be called {INPUT_SOURCE!r}")
        if name is not None and step.model == name:
            raise BundleError(f"invalid pipeline: step {step.name!r} runs the pipeline itself")
        for tensor, source in step.inputs.items():
            check_source(source, f"step {step.name!r} input {tensor!r}")
        earlier.add(step.name)
    for out in spec.outputs:
        check_source(out.source, f"output {out.name!r}")


def parse_pipeline(
    raw: bytes,
    *,
    shown_as: str = "pipeline spec",
    name: str | None = None,
    metadata: Any = None,
) -> PipelineSpec:
    """Validate the bytes of a pipeline spec; ``BundleError`` (one line) if bad. With
    ``metadata`` (a ``BundleMetadata``), its inputs and outputs must be the spec's."""
    if len(raw) > MAX_PIPELINE_BYTES:
        raise BundleError(f"{shown_as} is larger than {MAX_PIPELINE_BYTES} bytes")
    data = StrictJson(BundleError, invalid=f"{shown_as} is not valid JSON: {{exc}}").parse(raw)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{shown_as} is malformed: {validation_summary(exc)}") from exc
    check_pipeline(spec, name=name if metadata is None else str(metadata.name))
    if metadata is not None:
        if list(metadata.inputs) != spec.input_specs():
            raise BundleError(f"{shown_as}: inputs differ from those of the bundle metadata")
        if list(metadata.outputs) != spec.output_specs():
            raise BundleError(f"{shown_as}: outputs differ from those of the bundle metadata")
    return spec


def load_pipeline_spec(
    path: Path, *, name: str | None = None, metadata: Any = None
) -> PipelineSpec:
    """Read and validate a pipeline spec file (``parse_pipeline``)."""
    raw = read_small_file(path, shown_as=str(path), limit=MAX_PIPELINE_BYTES)
    return parse_pipeline(raw, shown_as=str(path), name=name, metadata=metadata)


def check_pipeline_bundle(constraints: Any, selection: Any) -> None:
    """A pipeline runs no backend of its own: ``BundleError`` for a backend pin, an
    accuracy tolerance or allowed runtimes (its steps' bundles carry those)."""
    if selection is not None:
        raise BundleError(
            "a pipeline has no backend to select: pin or tolerance belong to its steps' bundles"
        )
    if constraints is not None and constraints.runtimes:
        raise BundleError("a pipeline runs on no runtime of its own: drop constraints.runtimes")
