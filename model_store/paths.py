"""Bundle layout and path rules: which names a bundle may hold and how to list them safely.

A bundle path is a relative POSIX path of UTF-8 components, none empty, ``.`` or ``..``,
without NUL, control characters or backslashes. Directories are walked without following
symbolic links; a symbolic link or special file anywhere in a bundle is refused.

Paths are ordered as upstream ``model_signing`` orders them: by their components
(``pathlib.PurePosixPath`` order), so ``extra/x`` sorts before ``extra-data.txt`` even
though ``-`` < ``/`` as characters. The bundle digest depends on this order.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

from model_store.errors import BundleError, ModelStoreError

logger = logging.getLogger(__name__)

SIGNATURE_FILENAME = "model.sig"
METADATA_FILENAME = "edgefleet.json"

# Top-level names upstream ``model_signing`` ignores by default (it never signs them), so a
# bundle may not hold them: a signature covering them would not verify upstream.
GIT_PATHS: frozenset[str] = frozenset({".git", ".gitattributes", ".github", ".gitignore"})

MAX_PATH_CHARS = 4096


def _path_problem(name: str) -> str | None:
    """Return why ``name`` is not a safe bundle path, or None if it is."""
    if not name:
        return "empty path"
    if len(name) > MAX_PATH_CHARS:
        return "path too long"
    if "\x00" in name:
        return "contains NUL"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "contains a control character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "absolute path"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"'{part}' component" if part else "empty component"
    return None


def check_relative_path(name: object, *, what: str = "path") -> str:
    """Return ``name`` if it is a safe relative bundle path, else raise ``BundleError``."""
    if not isinstance(name, str):
        raise BundleError(f"unsafe {what}: expected a string, got {type(name).__name__}")
    problem = _path_problem(name)
    if problem is not None:
        raise BundleError(f"unsafe {what} {name!r}: {problem}")
    return name


def path_sort_key(name: str) -> tuple[str, ...]:
    """Sort key that orders bundle paths like upstream (by POSIX path components)."""
    return tuple(name.split("/"))


def sort_paths(names: Iterable[str]) -> list[str]:
    """Bundle paths in upstream ``model_signing`` order."""
    return sorted(names, key=path_sort_key)


def check_unique_paths(names: Iterable[str]) -> None:
    """``BundleError`` if a path repeats, differs from another only in case (they collide on
    case-insensitive file systems), or names a file where another path needs a directory."""
    listed = list(names)
    seen: dict[str, str] = {}
    parents = {rel.rsplit("/", i)[0] for rel in listed for i in range(1, rel.count("/") + 1)}
    for rel in listed:
        other = seen.get(rel.casefold())
        if other == rel or rel in parents:
            raise BundleError(f"duplicate bundle path {rel!r}")
        if other is not None:
            raise BundleError(
                f"bundle paths {other!r} and {rel!r} differ only in case "
                "(they collide on case-insensitive file systems)"
            )
        seen[rel.casefold()] = rel


def _raise_walk_error(exc: OSError) -> None:
    raise BundleError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc


def walk_files(root: Path, *, skip_top_level: Collection[str] = ()) -> list[tuple[str, Path]]:
    """Every regular file under ``root`` as ``(relative posix path, absolute path)``.

    The result is in upstream order. Top-level entries named in ``skip_top_level`` are
    neither listed nor walked into. Raises ``BundleError`` for a symbolic link, a special
    file, an unsafe name or an unreadable directory.
    """
    if not root.is_dir():
        raise BundleError(f"not a directory: {root}")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise_walk_error):
        base = Path(dirpath)
        at_top = base == root
        if at_top:
            dirnames[:] = [d for d in dirnames if d not in skip_top_level]
        for dirname in dirnames:
            rel = (base / dirname).relative_to(root).as_posix()
            check_relative_path(rel)
            if (base / dirname).is_symlink():
                raise BundleError(f"unsafe path {rel!r}: symbolic links are not allowed")
        for filename in filenames:
            if at_top and filename in skip_top_level:
                continue
            full = base / filename
            rel = full.relative_to(root).as_posix()
            check_relative_path(rel)
            try:
                mode = full.lstat().st_mode
            except OSError as exc:
                raise BundleError(f"cannot read {rel!r}: {exc.strerror or exc}") from exc
            if stat.S_ISLNK(mode):
                raise BundleError(f"unsafe path {rel!r}: symbolic links are not allowed")
            if not stat.S_ISREG(mode):
                raise BundleError(f"unsafe path {rel!r}: not a regular file")
            found.append((rel, full))
    found.sort(key=lambda item: path_sort_key(item[0]))
    return found


def open_regular_file(
    path: Path, *, shown_as: str, error: type[ModelStoreError] = BundleError
) -> int:
    """Open a regular file for reading without following a symbolic link; return the fd.

    Raises ``error`` (one line, naming ``shown_as``) if the file is missing, is a link or
    a special file, or cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise error(f"{shown_as} is missing") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"unsafe path {shown_as!r}: symbolic links are not allowed") from exc
        raise error(f"cannot read {shown_as}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"unsafe path {shown_as!r}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_small_file(
    path: Path, *, shown_as: str, limit: int, error: type[ModelStoreError] = BundleError
) -> bytes:
    """The bytes of a regular, non-link file of at most ``limit`` bytes."""
    fd = open_regular_file(path, shown_as=shown_as, error=error)
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {shown_as}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise error(f"{shown_as} is larger than {limit} bytes")
    return data
