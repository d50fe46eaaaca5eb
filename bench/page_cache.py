"""The runtimes' libraries as a device that booted has them in its page cache (a helper of
``bench.footprint``, not a benchmark).

A process's resident set counts the pages of the libraries it touched, and on Linux 6.x
a touch maps the page cache's whole folio around the page, not just the page. How large
those folios are depends on how the file came into the cache:

- **just written** (a fresh ``pip install``, ``make install``): in the large folios its
  writes made, and they stay so after the write-back, until the file leaves the cache;
- **read from disk** (after a reboot, or once the kernel evicted the file): in the
  smaller folios readahead makes.

Measured on a 2-vCPU AMD EPYC VM (kernel 6.18, ext4), an agent-like process serving
``tiny-mlp`` on OpenVINO (``agent.deployment.loading.load_runner``, 200 inferences):
76 MB of library pages (``RssFile``) right after ``pip install --force-reinstall
openvino``, the same after ``sync``, and 48 MB once the files were dropped from the cache
and read again; ``python -c 'import openvino'`` 38 MB against 30 MB. ``bench.footprint``
read the agent's own share on OpenVINO as 53.1 MB in a clone measured a minute after
``make install`` and 33.1 MB in one whose files the kernel had evicted meanwhile. So
the same code gave two figures ~20 MB apart depending on when it was measured.

``read_from_disk`` puts the runtimes' shared objects in the second state before a
measurement: each file is written back (``fdatasync``) and its cached pages dropped
(``posix_fadvise(POSIX_FADV_DONTNEED)``), so the next process reads them from disk as
after a boot. Pages that a running process maps are not dropped (the kernel keeps a
mapped page; the benchmark's own process maps ONNX Runtime's import pages, which the
import baseline touches too). It needs no privilege (no ``drop_caches``) and drops
nothing but those files' unmapped cache; elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.runners.pages import RUNTIME_PACKAGES, is_shared_object

SUPPORTED = hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


def _package_dirs(packages: Sequence[str]) -> Iterator[Path]:
    """The installed directories of ``packages`` (found, not imported)."""
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for where in (spec.submodule_search_locations or []) if spec else []:
            yield Path(where)


def _shared_objects(packages: Sequence[str]) -> Iterator[Path]:
    """Every shared object under the packages' directories (each file once: a link to a
    library is the library)."""
    seen: set[Path] = set()
    for top in _package_dirs(packages):
        for folder, _, names in os.walk(top):
            for name in names:
                path = Path(folder, name)
                if not is_shared_object(name) or path.is_symlink():
                    continue
                if (real := path.resolve()) not in seen:
                    seen.add(real)
                    yield real


def read_from_disk(packages: Sequence[str] = RUNTIME_PACKAGES) -> int:
    """Write back and drop from the page cache the shared objects of ``packages`` (module
    docstring); the bytes of the files handled (0 where unsupported)."""
    if not SUPPORTED:
        return 0
    handled = 0
    for path in _shared_objects(packages):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.fdatasync(fd)  # a dirty page is not dropped: written back first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            handled += os.fstat(fd).st_size
        except OSError:
            continue
        finally:
            os.close(fd)
    return handled
