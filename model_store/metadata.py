"""``edgefleet.json``: what a bundle holds (name, version, main model file, tensor specs)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from model_store.errors import BundleError
from model_store.paths import METADATA_FILENAME, check_relative_path, read_small_file

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_METADATA_BYTES = 1024 * 1024
# Model names and versions end up in URLs and cache paths: keep them boring.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


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


class BundleMetadata(BaseModel):
    """Content of ``edgefleet.json``; ``model_file`` is the main model's path in the bundle."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    framework: str = "onnx"
    model_file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

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

    @field_validator("model_file")
    @classmethod
    def _safe_model_file(cls, value: str) -> str:
        try:
            return check_relative_path(value, what="model_file")
        except BundleError as exc:
            raise ValueError(str(exc)) from exc


def validation_summary(exc: ValidationError) -> str:
    """The first pydantic error as one line: ``field: message``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_metadata(bundle_dir: Path) -> BundleMetadata:
    """Read and validate ``bundle_dir/edgefleet.json``; ``BundleError`` if missing or bad."""
    path = bundle_dir / METADATA_FILENAME
    raw = read_small_file(path, shown_as=str(path), limit=MAX_METADATA_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return BundleMetadata.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{path} is malformed: {validation_summary(exc)}") from exc


def write_metadata(bundle_dir: Path, metadata: BundleMetadata) -> Path:
    """Write ``edgefleet.json`` (pretty, stable key order, trailing newline)."""
    path = bundle_dir / METADATA_FILENAME
    try:
        path.write_text(metadata.model_dump_json(indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
