"""Build a bundle directory from a model, and list a bundle's files.

A bundle is a directory holding the model (its file name kept): an ONNX model with its
external data files, or an OpenVINO IR ``.xml`` with its ``.bin``; extra files (labels,
preprocessing config, any other file of a source directory); ``edgefleet.json`` and, once
signed, ``model.sig``. See ``docs/bundles.md``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_store.digests import sha256_regular_file
from model_store.errors import BundleError
from model_store.metadata import (
    FRAMEWORK_ONNX,
    FRAMEWORK_OPENVINO,
    FRAMEWORK_PIPELINE,
    NAME_PATTERN,
    PIPELINE_SUFFIX,
    BundleConstraints,
    BundleMetadata,
    BundleSelection,
    BundleServing,
    build_constraints,
    build_input_hints,
    build_selection,
    build_serving,
    ir_weights_file,
    write_metadata,
)
from model_store.onnx_io import external_data_files, io_specs, load_checked_model
from model_store.openvino_io import read_openvino_io
from model_store.paths import (
    GIT_PATHS,
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    check_relative_path,
    check_unique_paths,
    open_regular_file,
    sort_paths,
    walk_files,
)
from model_store.pipeline import check_pipeline_bundle, load_pipeline_spec

logger = logging.getLogger(__name__)

RESERVED_NAMES = frozenset({METADATA_FILENAME, SIGNATURE_FILENAME})


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle: relative posix path, hex sha256 and size in bytes."""

    path: str
    sha256: str
    size: int


def _check_name(label: str, value: str) -> None:
    if NAME_PATTERN.fullmatch(value) is None:
        raise BundleError(
            f"invalid model {label} {value!r}: use 1-128 letters, digits, '.', '_', '+', '-', "
            "starting with a letter or digit"
        )


def _is_onnx(name: str) -> bool:
    return name.lower().endswith(".onnx")


def _is_ir(name: str) -> bool:
    return name.lower().endswith(".xml")


@dataclass(frozen=True)
class _Source:
    """What a source contributes: the model file, the files it reads, every file."""

    framework: str
    model_file: str
    model_data: frozenset[str]
    files: list[tuple[str, Path]]


def _check_not_linked(parent: Path, location: str) -> None:
    for part in location.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise BundleError(f"unsafe path {location!r}: symbolic links are not allowed")


def _files_of_model_file(source: Path) -> _Source:
    """A single ``.onnx`` plus the external data it names, an IR ``.xml`` plus its ``.bin``,
    or a pipeline spec ``*.pipeline.json`` alone."""
    files = [(source.name, source.resolve())]  # the operator may name the model by a link
    if source.name.lower().endswith(PIPELINE_SUFFIX):
        return _Source(FRAMEWORK_PIPELINE, source.name, frozenset(), files)
    if _is_onnx(source.name):
        data = external_data_files(load_checked_model(source))
        for location in data:
            _check_not_linked(source.parent, location)
            files.append((location, source.parent / location))
        return _Source(FRAMEWORK_ONNX, source.name, frozenset(data), files)
    if _is_ir(source.name):
        weights = ir_weights_file(source.name)
        if not os.path.lexists(source.parent / weights):
            raise BundleError(
                f"{weights} is missing: an OpenVINO IR is {source.name} plus {weights} beside it"
            )
        files.append((weights, source.parent / weights))
        return _Source(FRAMEWORK_OPENVINO, source.name, frozenset({weights}), files)
    raise BundleError(
        f"{source} is not an .onnx file, an OpenVINO IR .xml or a {PIPELINE_SUFFIX} spec"
    )


def _files_of_directory(source: Path) -> _Source:
    """Every file of a source directory (git metadata skipped); exactly one top-level model:
    an ``.onnx``, or an IR ``.xml`` with its ``.bin``."""
    skipped = sorted(name for name in GIT_PATHS if (source / name).exists())
    if skipped:
        logger.info("not bundling git metadata: %s", ", ".join(skipped))
    files = walk_files(source, skip_top_level=GIT_PATHS)
    top_level = {rel for rel, _ in files if "/" not in rel}
    reserved = sorted(RESERVED_NAMES.intersection(top_level))
    if reserved:
        raise BundleError(
            f"{source} already holds {reserved[0]!r}, a reserved bundle file name "
            "(build from the original model, not from a bundle)"
        )
    models = sorted(
        rel
        for rel in top_level
        if _is_onnx(rel) or (_is_ir(rel) and ir_weights_file(rel) in top_level)
    )
    lone_xml = sorted(r for r in top_level if _is_ir(r) and ir_weights_file(r) not in top_level)
    if not models and lone_xml:
        weights = ir_weights_file(lone_xml[0])
        raise BundleError(f"{weights} is missing: an OpenVINO IR is {lone_xml[0]} plus {weights}")
    if len(models) != 1:
        found = ", ".join(models) if models else "none"
        raise BundleError(
            f"{source} must hold exactly one top-level .onnx model or OpenVINO IR (.xml + .bin) "
            f"(found {len(models)}: {found}); pass the model file and extra_files instead"
        )
    model = models[0]
    if _is_ir(model):
        return _Source(FRAMEWORK_OPENVINO, model, frozenset({ir_weights_file(model)}), files)
    data = frozenset(external_data_files(load_checked_model(source / model)))
    return _Source(FRAMEWORK_ONNX, model, data, files)


def _extra_files(paths: Iterable[Path | str]) -> list[tuple[str, Path]]:
    """Files named by the operator, put at the top level under their names (a directory
    with everything under it); links are refused, not followed."""
    found: list[tuple[str, Path]] = []
    for item in paths:
        path = Path(item)
        rel = check_relative_path(path.name, what="extra file name")
        if path.is_symlink():
            raise BundleError(f"unsafe path {rel!r}: symbolic links are not allowed")
        if path.is_dir():
            found.extend((f"{rel}/{sub}", full) for sub, full in walk_files(path))
        elif path.exists():
            found.append((rel, path))  # a special file is refused when it is copied
        else:
            raise BundleError(f"extra file not found: {path}")
    return found


def _check_out_dir(out_dir: Path, source: Path) -> None:
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise BundleError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise BundleError(f"output directory {out_dir} is not empty")
    if source.is_dir() and out_dir.resolve().is_relative_to(source.resolve()):
        raise BundleError(f"output directory {out_dir} must not be inside the source {source}")


def _copy_file(src: Path, dst: Path, *, shown_as: str) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"cannot copy {shown_as}: {exc.strerror or exc}") from exc
    fd = open_regular_file(src, shown_as=shown_as)
    try:
        with os.fdopen(fd, "rb") as reader, dst.open("xb") as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)
    except OSError as exc:
        raise BundleError(f"cannot copy {shown_as}: {exc.strerror or exc}") from exc


def build_bundle(
    source: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    constraints: BundleConstraints | Mapping[str, Any] | None = None,
    extra_files: Iterable[Path | str] = (),
    selection: BundleSelection | Mapping[str, Any] | None = None,
    serving: BundleServing | Mapping[str, Any] | None = None,
    input_hints: Mapping[str, Any] | None = None,
) -> BundleMetadata:
    """Copy a model into a new bundle directory ``out_dir`` and write ``edgefleet.json``.

    ``source`` is an ``.onnx`` file (with the external data files it names, beside it), an
    OpenVINO IR ``.xml`` (with the ``.bin`` of the same name beside it), a pipeline spec
    ``*.pipeline.json`` (``model_store.pipeline``: no backend pin or runtimes), or a directory
    holding exactly one top-level model of either kind plus any other files. Each of
    ``extra_files`` (a file, or a directory with everything under it) is added at the top
    level under its name. Files that are not model data are listed in ``extra_files`` of
    the metadata. ``out_dir`` must not exist or be empty; it is filled atomically (built
    beside it, then renamed). Symbolic links, special files, unsafe or duplicate names are
    refused. The model is checked as copied (``onnx.checker``; OpenVINO reads an IR).
    ``selection`` (a backend ``pin``, an accuracy ``tolerance``) goes into the metadata,
    so the operator's signature covers it, as does ``serving`` (priority, declared memory,
    concurrency, threads), and ``input_hints`` (per input name: ``shape``, ``range``,
    ``values``; ``model_store.input_hints``), checked against the model's inputs. The
    bundle is not signed.
    """
    _check_name("name", name)
    _check_name("version", version)
    if not source.exists():
        raise BundleError(f"model source not found: {source}")
    found = _files_of_directory(source) if source.is_dir() else _files_of_model_file(source)
    files = [*found.files, *_extra_files(extra_files)]
    check_unique_paths(rel for rel, _ in files)
    reserved = sorted(RESERVED_NAMES.intersection(rel for rel, _ in files))
    if reserved:
        raise BundleError(f"{reserved[0]!r} is a reserved bundle file name")
    checked_constraints = build_constraints(constraints, framework=found.framework)
    checked_selection = build_selection(selection)
    checked_serving = build_serving(serving)
    if found.framework == FRAMEWORK_PIPELINE:
        check_pipeline_bundle(checked_constraints, checked_selection)
    _check_out_dir(out_dir, source)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise BundleError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    try:
        for rel, src in files:
            _copy_file(src, staging / check_relative_path(rel), shown_as=rel)
        if found.framework == FRAMEWORK_OPENVINO:
            inputs, outputs = read_openvino_io(staging / found.model_file)
        elif found.framework == FRAMEWORK_PIPELINE:
            spec = load_pipeline_spec(staging / found.model_file, name=name)
            inputs, outputs = spec.input_specs(), spec.output_specs()
        else:
            inputs, outputs = io_specs(load_checked_model(staging / found.model_file))
        model_files = {found.model_file, *found.model_data}
        metadata = BundleMetadata(
            name=name,
            version=version,
            framework=found.framework,
            model_file=found.model_file,
            inputs=inputs,
            outputs=outputs,
            extra_files=sort_paths(rel for rel, _ in files if rel not in model_files),
            constraints=checked_constraints,
            selection=checked_selection,
            serving=checked_serving,
            input_hints=build_input_hints(input_hints, inputs),
        )
        write_metadata(staging, metadata)
        staging.chmod(0o755)
        if out_dir.is_dir():
            out_dir.rmdir()
        staging.rename(out_dir)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "built %s bundle %s %s in %s (%d files, model %s)",
        found.framework,
        name,
        version,
        out_dir,
        len(files) + 1,
        found.model_file,
    )
    return metadata


def list_bundle_paths(bundle_dir: Path) -> list[tuple[str, Path]]:
    """The files ``bundle_files`` reports, as ``(relative path, path)``, without hashing."""
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle directory not found: {bundle_dir}")
    for name in sorted(GIT_PATHS):
        if os.path.lexists(bundle_dir / name):
            raise BundleError(
                f"unsafe path {name!r}: git metadata cannot be part of a bundle "
                "(model_signing ignores it)"
            )
    return walk_files(bundle_dir, skip_top_level={SIGNATURE_FILENAME})


def bundle_files(bundle_dir: Path) -> list[BundleFile]:
    """Every file of a bundle except ``model.sig``, in upstream path order, hashed.

    ``BundleError`` for a symbolic link, special file, unsafe name, or git metadata at the
    top level (upstream ``model_signing`` never signs it).
    """
    result: list[BundleFile] = []
    for rel, full in list_bundle_paths(bundle_dir):
        digest, size = sha256_regular_file(full, shown_as=rel)
        result.append(BundleFile(path=rel, sha256=digest, size=size))
    return result
