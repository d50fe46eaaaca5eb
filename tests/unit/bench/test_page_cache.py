"""``bench.page_cache.read_from_disk`` on a package of its own: which files it takes, and
that their cached pages are gone afterwards (a read that must not wait for the disk,
``RWF_NOWAIT``, then has nothing to return), while another file's stay."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.page_cache import SUPPORTED, read_from_disk

PACKAGE = "ef_page_cache_probe"
SIZE = 256 * 1024


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / PACKAGE
    (root / "libs").mkdir(parents=True)
    (root / "__init__.py").write_bytes(b"\n" * SIZE)  # not a shared object: left alone
    for name in ("libprobe.so.2", "_native.cpython-311-x86_64-linux-gnu.so"):
        (root / "libs" / name).write_bytes(os.urandom(SIZE))
    (root / "libs" / "libprobe.so").symlink_to("libprobe.so.2")  # the same file, once
    sys.path.insert(0, str(tmp_path))
    try:
        yield root
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(PACKAGE, None)


def _cached(path: Path) -> bool:
    """Whether the file's first page is in the page cache (a read that may not wait)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(4096)], 0, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.skipif(not SUPPORTED, reason="posix_fadvise is Linux's")
def test_it_takes_each_shared_object_of_the_package_once(package: Path) -> None:
    assert read_from_disk([PACKAGE]) == 2 * SIZE
    assert read_from_disk(["ef_no_such_package"]) == 0


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="RWF_NOWAIT is Linux's")
def test_the_libraries_are_read_from_disk_again(package: Path) -> None:
    library, other = package / "libs" / "libprobe.so.2", package / "__init__.py"
    if not _cached(library):  # e.g. a file system without a page cache of its own
        pytest.skip("a file just written is not in the page cache here")
    read_from_disk([PACKAGE])
    assert not _cached(library)
    assert not _cached(package / "libs" / "_native.cpython-311-x86_64-linux-gnu.so")
    assert _cached(other)
