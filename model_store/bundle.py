"""Build a bundle directory from an ONNX model, and list a bundle's files.

A bundle is a directory holding the model (its file name kept), any other files of a
source directory (external data, labels, ...), ``edgefleet.json`` and, once signed,
``model.sig``. See ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model_store.digests import sha256_regular_file
from model_store.errors import BundleError
from model_store.metadata import NAME_PATTERN, BundleMetadata, write_metadata
from model_store.onnx_io import external_data_files, io_specs, load_checked_model
from model_store.paths import (
    GIT_PATHS,
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    check_relative_path,
    open_regular_file,
    walk_files,
)

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


def _files_of_model_file(source: Path) -> tuple[str, list[tuple[str, Path]]]:
    """A single ``.onnx`` file plus the external data files it names, beside it."""
    if not _is_onnx(source.name):
        raise BundleError(f"{source} is not an .onnx file")
    model = load_checked_model(source)
    files = [(source.name, source.resolve())]  # the operator may name the model by a link
    for location in external_data_files(model):
        parent = source.parent
        for part in location.split("/")[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise BundleError(f"unsafe path {location!r}: symbolic links are not allowed")
        files.append((location, source.parent / location))
    reserved = [rel for rel, _ in files if rel in RESERVED_NAMES]
    if reserved:
        raise BundleError(f"{reserved[0]!r} is a reserved bundle file name")
    return source.name, files


def _files_of_directory(source: Path) -> tuple[str, list[tuple[str, Path]]]:
    """Every file of a source directory (git metadata skipped); exactly one top-level .onnx."""
    skipped = sorted(name for name in GIT_PATHS if (source / name).exists())
    if skipped:
        logger.info("not bundling git metadata: %s", ", ".join(skipped))
    files = walk_files(source, skip_top_level=GIT_PATHS)
    top_level = [rel for rel, _ in files if "/" not in rel]
    reserved = sorted(RESERVED_NAMES.intersection(top_level))
    if reserved:
        raise BundleError(
            f"{source} already holds {reserved[0]!r}, a reserved bundle file name "
            "(build from the original model, not from a bundle)"
        )
    models = [rel for rel in top_level if _is_onnx(rel)]
    if len(models) != 1:
        found = ", ".join(models) if models else "none"
        raise BundleError(
            f"{source} must hold exactly one top-level .onnx model (found {len(models)}: {found})"
        )
    return models[0], files


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


def build_bundle(source: Path, out_dir: Path, *, name: str, version: str) -> BundleMetadata:
    """Copy a model into a new bundle directory ``out_dir`` and write ``edgefleet.json``.

    ``source`` is an ``.onnx`` file (its external data files beside it are taken too) or a
    directory holding exactly one top-level ``*.onnx`` plus any other files. ``out_dir``
    must not exist or be empty; it is filled atomically (built beside it, then renamed).
    Symbolic links, special files and unsafe names in the source are refused. The model
    is checked with ``onnx.checker`` as copied. The bundle is not signed.
    """
    _check_name("name", name)
    _check_name("version", version)
    if not source.exists():
        raise BundleError(f"model source not found: {source}")
    if source.is_dir():
        model_file, files = _files_of_directory(source)
    else:
        model_file, files = _files_of_model_file(source)
    _check_out_dir(out_dir, source)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise BundleError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    try:
        for rel, src in files:
            _copy_file(src, staging / check_relative_path(rel), shown_as=rel)
        inputs, outputs = io_specs(load_checked_model(staging / model_file))
        metadata = BundleMetadata(
            name=name, version=version, model_file=model_file, inputs=inputs, outputs=outputs
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
        "built bundle %s %s in %s (%d files, model %s)",
        name,
        version,
        out_dir,
        len(files) + 1,
        model_file,
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
