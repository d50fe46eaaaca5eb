"""Staged bundle files on disk: resumable across attempts and restarts, never via a symlink.

Layout: ``data_dir/staging/<bundle_digest>/<path>``. A file being downloaded is
``<path>.part``; it is renamed to ``<path>`` only once its size and sha256 match the
declaration (``BlobFetcher.fetch_to``). What a later attempt finds there (after a retry,
an agent restart or a ``kill -9``) is only a hint that saves bandwidth:

- a complete ``<path>`` is hashed again and reused only if size and digest still match
  (else removed);
- a ``.part`` is a prefix to resume from: its bytes are hashed and the download asks for
  the rest (``Range: bytes=<size>-``); one longer than declared is truncated. Whether
  the prefix was right shows in the final digest (the fetcher refetches once from zero);
- ``prune`` removes whatever the signed manifest does not list.

The staged bundle is still verified as a whole (signature and every digest) before it
is installed; nothing here is trusted.

Symlinks: each directory below ``data_dir`` is opened relative to its parent with
``O_NOFOLLOW | O_DIRECTORY`` and each file with ``O_NOFOLLOW`` (and checked to be a
regular file after opening), so a symlink planted in staging, at any depth, is removed
and never followed; so is a file where a directory belongs, or a directory where a file
belongs. Write errors are left as ``OSError``: ``BundleCache.download`` turns ENOSPC /
EDQUOT into ``StorageFull`` (``full``), the error ``check_space`` raises before any
download when the bytes still missing, plus a small reserve (``fit.disk_reserve``),
exceed the free space.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType

from agent.deployment.fit import disk_problem, disk_reserve
from agent.errors import StorageFull
from protocol import FileRef

PART_SUFFIX = ".part"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_PLAIN = re.compile(r"[\w.\-]+(/[\w.\-]+)*")


class PartFile:
    """An open ``.part`` file: ``size`` bytes held so far, all of them in the digest."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._digest = hashlib.sha256()
        self.size = 0
        while chunk := os.read(fd, _CHUNK):  # the prefix an earlier attempt left
            self._digest.update(chunk)
            self.size += len(chunk)

    def write(self, chunk: bytes) -> None:
        """Append (unbuffered: what was received is on disk even after ``kill -9``)."""
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]
        self._digest.update(chunk)
        self.size += len(chunk)

    def reset(self) -> None:
        """Drop everything held: the next byte is byte 0."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._digest = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> PartFile:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Staging:
    """``staging/<digest>/`` of one bundle, opened without following symlinks."""

    def __init__(self, root: Path, digest: str) -> None:
        """``root`` is ``data_dir/staging``; ``data_dir`` itself is configuration."""
        self.root = root
        self.digest = digest
        self._fd = -1

    @property
    def path(self) -> Path:
        return self.root / self.digest

    def __enter__(self) -> Staging:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        data_fd = os.open(self.root.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            root_fd = _subdir(data_fd, self.root.name)
        finally:
            os.close(data_fd)
        try:
            self._fd = _subdir(root_fd, self.digest)
        finally:
            os.close(root_fd)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self._fd)
        self._fd = -1

    def has_complete(self, ref: FileRef) -> bool:
        """Whether ``<path>`` is staged with the declared size and sha256 (else removed)."""
        with self._at(ref.path) as (dir_fd, name):
            fd = _open_regular(dir_fd, name, os.O_RDONLY)
            if fd is None:
                return False
            try:
                if os.fstat(fd).st_size == ref.size and _sha256_fd(fd) == ref.sha256:
                    return True
            finally:
                os.close(fd)
            os.unlink(name, dir_fd=dir_fd)
            return False

    def open_part(self, ref: FileRef) -> PartFile:
        """``<path>.part`` for appending, created if missing, truncated if too long."""
        with self._at(ref.path) as (dir_fd, name):
            part = name + PART_SUFFIX
            fd = _open_regular(dir_fd, part, os.O_RDWR | os.O_CREAT)
            if fd is None:  # what was there is gone now: create a fresh one
                fd = _open_regular(dir_fd, part, os.O_RDWR | os.O_CREAT)
            if fd is None:
                raise FileExistsError(errno.EEXIST, "cannot create", f"{ref.path}{PART_SUFFIX}")
        if os.fstat(fd).st_size > ref.size:
            os.ftruncate(fd, 0)
        return PartFile(fd)

    def finish(self, ref: FileRef) -> None:
        """Rename the verified ``<path>.part`` to ``<path>`` (replacing whatever was there)."""
        with self._at(ref.path) as (dir_fd, name):
            _remove_dir_entry(dir_fd, name, only_dirs=True)
            os.rename(name + PART_SUFFIX, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    def write_file(self, path: str, data: bytes) -> None:
        """Stage a small file downloaded into memory (``edgefleet.json``, ``model.sig``)."""
        ref = FileRef(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        with self.open_part(ref) as part:
            part.reset()
            part.write(data)
        self.finish(ref)

    def staged_bytes(self, refs: Iterable[FileRef]) -> int:
        """Bytes of ``refs`` already on disk (complete or partial, each at most its size);
        an estimate for the free-space check, usable before the directory is opened and
        before the paths are verified (one that is not plain counts as nothing)."""
        plain = (r for r in refs if _PLAIN.fullmatch(r.path) and ".." not in r.path.split("/"))
        return sum(min(_staged_size(self.path, ref.path), ref.size) for ref in plain)

    def check_space(self, need: int, label: str, *, reserve_mb: int | None = 0) -> None:
        """StorageFull unless ``need`` more bytes fit on the staging filesystem, leaving
        ``fit.disk_reserve`` of ``reserve_mb`` free."""
        usage = shutil.disk_usage(self._existing())
        reserve = disk_reserve(reserve_mb, usage.total)
        problem = disk_problem(label=label, need=need, free=usage.free, reserve=reserve)
        if problem is not None:
            raise StorageFull(problem)

    def full(self, label: str, need: int, code: int) -> StorageFull:
        what = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
        return StorageFull(
            f"{what} while staging {label}: needs {need} bytes, {self.free_bytes()} free"
        )

    def free_bytes(self) -> int:
        """Free bytes on the staging filesystem (that of its nearest existing parent)."""
        return shutil.disk_usage(self._existing()).free

    def _existing(self) -> Path:
        path = self.root
        while not path.is_dir() and path != path.parent:
            path = path.parent
        return path

    def prune(self, keep: Iterable[str]) -> None:
        """Remove every entry that is not a listed file, its ``.part``, or a directory on
        the way to one (symlinks included, never followed)."""
        paths = list(keep)
        files = {p for path in paths for p in (path, path + PART_SUFFIX)}
        dirs = {p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)}
        _prune(self._fd, "", files, dirs)

    @contextmanager
    def _at(self, path: str) -> Iterator[tuple[int, str]]:
        """The directory holding ``path`` (created, opened without following symlinks)
        and the file name in it."""
        *parents, name = path.split("/")
        fd = os.dup(self._fd)
        try:
            for part in parents:
                child = _subdir(fd, part)
                os.close(fd)
                fd = child
            yield fd, name
        finally:
            os.close(fd)


def remove_staging(root: Path, digest: str) -> None:
    """Remove ``root/<digest>`` (a symlink there is unlinked, never followed)."""
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError as exc:  # root itself is not a directory of ours
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        return
    try:
        _remove_dir_entry(root_fd, digest, only_dirs=False)
    finally:
        os.close(root_fd)


def _subdir(parent_fd: int, name: str) -> int:
    """Open directory ``name`` under ``parent_fd``, creating it; a symlink or a file
    there is removed first."""
    for _ in range(2):
        with suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            os.unlink(name, dir_fd=parent_fd)
    raise FileExistsError(errno.EEXIST, "cannot create a directory", name)


def _open_regular(dir_fd: int, name: str, flags: int) -> int | None:
    """``name`` opened as a regular file; None (and removed) if it is something else,
    None if it is missing and ``flags`` do not create it."""
    try:
        fd = os.open(name, flags | _FILE_FLAGS, 0o644, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        _remove_dir_entry(dir_fd, name, only_dirs=False)
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)  # a FIFO or device node planted in staging
    os.unlink(name, dir_fd=dir_fd)
    return None


def _remove_dir_entry(dir_fd: int, name: str, *, only_dirs: bool) -> None:
    """Remove ``name`` under ``dir_fd`` without following it (a real directory with its
    contents; with ``only_dirs`` anything else is left, since a rename replaces it)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    elif not only_dirs:
        os.unlink(name, dir_fd=dir_fd)


def _prune(dir_fd: int, prefix: str, files: set[str], dirs: set[str]) -> None:
    with os.scandir(dir_fd) as it:
        entries = [
            (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False)) for e in it
        ]
    for name, is_dir, is_file in entries:
        rel = prefix + name
        if is_dir and rel in dirs:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _prune(child, rel + "/", files, dirs)
            finally:
                os.close(child)
        elif not (is_file and rel in files):  # symlinks, unlisted files and directories
            _remove_dir_entry(dir_fd, name, only_dirs=False)


def _staged_size(bundle_dir: Path, path: str) -> int:
    """Size of ``path`` (or its ``.part``) in ``bundle_dir``; 0 if missing or not a plain
    file (this only estimates the space still needed; nothing is opened)."""
    for candidate in (bundle_dir / path, bundle_dir / (path + PART_SUFFIX)):
        try:
            st = candidate.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return st.st_size
    return 0


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
