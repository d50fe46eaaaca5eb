"""``edgefleet.json``: what a bundle holds (name, version, framework, model files, tensor
specs, extra files), what a device needs to run it (``BundleConstraints``) and how it
picks the backend (``BundleSelection``: a pinned backend, the accuracy tolerance) and how
it shares a device with other models (``BundleServing``: priority, memory, concurrency,
threads).

``schema_version`` stays 1: the fields added later (``extra_files``, ``constraints``,
``selection``, ``serving``, ``input_hints``) are optional, and readers ignore fields they
do not know.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from model_store.errors import BundleError
from model_store.input_hints import InputHint, check_hints_fit
from model_store.paths import METADATA_FILENAME, check_relative_path, read_small_file
from model_store.strict_json import StrictJson
from protocol.messages import Priority
from protocol.selection import BACKEND_KEY_MAX, BACKEND_KEY_PATTERN

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_METADATA_BYTES = 1024 * 1024
# Model names and versions end up in URLs and cache paths: keep them boring.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
#: Framework names, runtime (runner) keys and CPU flags: short lowercase tokens.
TOKEN_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

FRAMEWORK_ONNX = "onnx"
FRAMEWORK_OPENVINO = "openvino"
#: A pipeline over other models the device serves (``model_store.pipeline``).
FRAMEWORK_PIPELINE = "pipeline"
PIPELINE_SUFFIX = ".pipeline.json"
#: What each framework's model file is called (``model_file`` must end like this).
MODEL_SUFFIXES: dict[str, str] = {
    FRAMEWORK_ONNX: ".onnx",
    FRAMEWORK_OPENVINO: ".xml",
    FRAMEWORK_PIPELINE: PIPELINE_SUFFIX,
}
#: Runtimes the bundle format knows (agent runner keys); ``build_bundle`` refuses others.
KNOWN_RUNTIMES: frozenset[str] = frozenset({"onnxruntime", "openvino"})


class TensorSpec(BaseModel):
    """One model input or output.

    ``dtype`` is the numpy dtype name (``float32``, ``int64``, ``bool``, ``float16``,
    ``uint8``, ``object`` for ONNX strings, ...); non-tensor values (sequences, maps,
    optionals) use ``sequence``/``map``/``optional``/``sparse_tensor`` with shape ``[]``.
    ``shape`` holds ints for fixed dims and strings for dynamic ones: the ONNX
    ``dim_param`` name, or ``"?"`` when unnamed; a tensor of unknown rank is ``["..."]``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    dtype: str
    shape: list[int | str]


def _unique_tokens(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if TOKEN_PATTERN.fullmatch(value) is None:
            raise ValueError(
                f"invalid {what} {value!r}: use lowercase letters, digits, '_', '.', '-'"
            )
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)
    return values


class BundleConstraints(BaseModel):
    """What a device must offer to run a bundle; every field is optional.

    ``runtimes``: the runtimes (agent runner keys, ``onnxruntime``, ``openvino``) allowed to
    serve the bundle; at least one of them must be available. ``min_ram_bytes``: total RAM.
    ``cpu_flags``: CPU flags (``/proc/cpuinfo`` names: ``avx2``, ``avx512f``, ...) that must
    all be present. Unknown fields are refused: an agent never ignores a constraint.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtimes: list[str] | None = Field(default=None, min_length=1)
    min_ram_bytes: Annotated[StrictInt, Field(ge=1)] | None = None
    cpu_flags: list[str] | None = Field(default=None, min_length=1)

    @field_validator("runtimes")
    @classmethod
    def _runtime_names(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique_tokens(value, "runtime")

    @field_validator("cpu_flags")
    @classmethod
    def _flag_names(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique_tokens(value, "CPU flag")


class BundleSelection(BaseModel):
    """How devices pick the backend of this bundle, signed by the operator with it.

    ``pin``: a backend candidate key (``runtime:device:precision``, e.g.
    ``openvino:CPU:f32``) that overrides the measurement. ``tolerance``: the largest max
    abs error a candidate may have against the fp32 reference, as a fraction of the
    reference's max abs value (0 < tolerance <= 1; devices default to 0.01). ``topk``:
    classifier-like outputs (float ``[batch, classes]``) must also agree with the
    reference on each row's top-k classes (top-1: the argmax; devices default to no
    such check). Unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pin: str | None = Field(default=None, max_length=BACKEND_KEY_MAX, pattern=BACKEND_KEY_PATTERN)
    tolerance: float | None = Field(default=None, gt=0, le=1)
    topk: Annotated[StrictInt, Field(ge=1, le=100)] | None = None


class BundleServing(BaseModel):
    """How a model shares a device with the others it serves; every field is optional.

    ``priority``: ``high``, ``normal`` (default) or ``low``; a deployment's own priority
    wins. ``memory_bytes``: the memory the model is declared to need once loaded (the
    agent refuses it before unloading anything if the device's models would not fit).
    ``concurrency``: the most requests it serves at once; ``threads``: the CPU threads
    its backend runs with (both default to the agent's share by priority). Unknown fields
    are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Priority | None = None
    memory_bytes: Annotated[StrictInt, Field(ge=1)] | None = None
    concurrency: Annotated[StrictInt, Field(ge=1, le=1024)] | None = None
    threads: Annotated[StrictInt, Field(ge=1, le=1024)] | None = None


class BundleMetadata(BaseModel):
    """Content of ``edgefleet.json``.

    ``model_file`` is the main model's path in the bundle (the ``.onnx``, or the ``.xml``
    of an OpenVINO IR, whose weights are the ``.bin`` of the same name beside it).
    ``extra_files`` are the bundle's other files that are not model data (labels,
    preprocessing config, ...), sorted; ``constraints`` what a device needs to run it;
    ``selection`` the operator's backend pin and accuracy tolerance; ``serving`` its
    share of a device that serves several models; ``input_hints`` what its real inputs
    look like, per input name (``model_store.input_hints``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    framework: str = FRAMEWORK_ONNX
    model_file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    extra_files: list[str] = Field(default_factory=list)
    constraints: BundleConstraints | None = None
    selection: BundleSelection | None = None
    serving: BundleServing | None = None
    input_hints: dict[str, InputHint] | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {value} (expected {SCHEMA_VERSION})")
        return value

    @field_validator("name", "version")
    @classmethod
    def _boring_name(cls, value: str) -> str:
        if NAME_PATTERN.fullmatch(value) is None:
            raise ValueError(
                "must be 1-128 characters of letters, digits, '.', '_', '+', '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("framework")
    @classmethod
    def _framework_token(cls, value: str) -> str:
        if TOKEN_PATTERN.fullmatch(value) is None:
            raise ValueError(f"invalid framework {value!r}")
        return value

    @field_validator("model_file")
    @classmethod
    def _safe_model_file(cls, value: str) -> str:
        try:
            return check_relative_path(value, what="model_file")
        except BundleError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("extra_files")
    @classmethod
    def _safe_extra_files(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for path in value:
            try:
                check_relative_path(path, what="extra file")
            except BundleError as exc:
                raise ValueError(str(exc)) from exc
            if path in seen:
                raise ValueError(f"duplicate extra file {path!r}")
            seen.add(path)
        return value

    @model_validator(mode="after")
    def _consistent_files(self) -> BundleMetadata:
        suffix = MODEL_SUFFIXES.get(self.framework)
        if suffix is not None and not self.model_file.lower().endswith(suffix):
            raise ValueError(
                f"model_file {self.model_file!r} of a {self.framework} bundle must end in {suffix}"
            )
        if self.model_file in self.extra_files:
            raise ValueError(f"model_file {self.model_file!r} is also listed as an extra file")
        if self.input_hints:
            check_hints_fit(self.input_hints, self.inputs)
        return self


_Section = TypeVar("_Section", bound=BaseModel)


def _validated(model: type[_Section], value: _Section | Mapping[str, Any], what: str) -> _Section:
    """``value`` as ``model``; BundleError ``invalid <what>: <first error>`` if it is not."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise BundleError(f"invalid {what}: {validation_summary(exc)}") from exc


def build_constraints(
    value: BundleConstraints | Mapping[str, Any] | None, *, framework: str
) -> BundleConstraints | None:
    """Validate constraints given to ``build_bundle``: stricter than reading them back, an
    unknown runtime (a typo) is refused, and an IR must be allowed its 'openvino' runtime."""
    if value is None:
        return None
    constraints = _validated(BundleConstraints, value, "constraints")
    runtimes = constraints.runtimes or []
    unknown = sorted(set(runtimes) - KNOWN_RUNTIMES)
    if unknown:
        raise BundleError(
            f"invalid constraints: unknown runtime {unknown[0]!r} "
            f"(known: {', '.join(sorted(KNOWN_RUNTIMES))})"
        )
    if framework == FRAMEWORK_OPENVINO and runtimes and "openvino" not in runtimes:
        raise BundleError(
            f"invalid constraints: an OpenVINO IR runs only on runtime 'openvino', not {runtimes}"
        )
    return constraints


def build_selection(
    value: BundleSelection | Mapping[str, Any] | None,
) -> BundleSelection | None:
    """Validate the selection given to ``build_bundle``; None if it says nothing."""
    if value is None:
        return None
    selection = _validated(BundleSelection, value, "selection")
    return selection if selection.model_dump(exclude_none=True) else None


def build_serving(value: BundleServing | Mapping[str, Any] | None) -> BundleServing | None:
    """Validate the serving settings given to ``build_bundle``; None if they say nothing."""
    if value is None:
        return None
    serving = _validated(BundleServing, value, "serving settings")
    return serving if serving.model_dump(exclude_none=True) else None


def build_input_hints(
    value: Mapping[str, InputHint | Mapping[str, Any]] | None, inputs: list[TensorSpec]
) -> dict[str, InputHint] | None:
    """Validate the input hints given to ``build_bundle`` (``model_store.input_hints``)
    against the model's ``inputs``; None if there are none."""
    if not value:
        return None
    hints = {
        name: _validated(InputHint, hint, f"input hint for {name!r}")
        for name, hint in value.items()
    }
    try:
        check_hints_fit(hints, inputs)
    except ValueError as exc:
        raise BundleError(f"invalid {exc}") from exc
    return hints


def ir_weights_file(xml_path: str) -> str:
    """The weights file OpenVINO reads for an IR ``.xml``: same path, ``.bin`` suffix."""
    stem = xml_path[: -len(".xml")] if xml_path.lower().endswith(".xml") else xml_path
    return stem + ".bin"


def validation_summary(exc: ValidationError) -> str:
    """The first pydantic error as one line: ``field: message``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def parse_metadata(raw: bytes, *, shown_as: str = METADATA_FILENAME) -> BundleMetadata:
    """Validate the bytes of an ``edgefleet.json`` (e.g. downloaded alone, before the model
    files, to check the constraints); ``BundleError`` naming ``shown_as`` if bad."""
    if len(raw) > MAX_METADATA_BYTES:
        raise BundleError(f"{shown_as} is larger than {MAX_METADATA_BYTES} bytes")
    # a repeated key is invalid JSON here ("... is not valid JSON: duplicate key 'k'")
    data = StrictJson(BundleError, invalid=f"{shown_as} is not valid JSON: {{exc}}").parse(raw)
    try:
        return BundleMetadata.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{shown_as} is malformed: {validation_summary(exc)}") from exc


def load_metadata(bundle_dir: Path) -> BundleMetadata:
    """Read and validate ``bundle_dir/edgefleet.json``; ``BundleError`` if missing or bad."""
    path = bundle_dir / METADATA_FILENAME
    raw = read_small_file(path, shown_as=str(path), limit=MAX_METADATA_BYTES)
    return parse_metadata(raw, shown_as=str(path))


def write_metadata(bundle_dir: Path, metadata: BundleMetadata) -> Path:
    """Write ``edgefleet.json`` (pretty, stable key order, trailing newline).

    Empty ``extra_files``, absent constraints and selection are left out, so a single-file
    ONNX bundle has exactly the ``edgefleet.json`` it had before these fields existed.
    """
    path = bundle_dir / METADATA_FILENAME
    exclude = set() if metadata.extra_files else {"extra_files"}
    try:
        text = metadata.model_dump_json(indent=2, exclude_none=True, exclude=exclude)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
