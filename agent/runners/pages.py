"""Give back the shared-library pages a model load touched and serving does not use.

Compiling a model runs code that serving never runs again: OpenVINO's CPU plugin
(``libopenvino_intel_cpu_plugin.so``, mapped at the first ``compile_model``) leaves
~37 MB of its pages resident after compiling ``tiny-mlp``, most of them graph
transformations and kernel generators (``bench.footprint``: the OpenVINO agent's own
share was 37.5 MB file-backed, 18.5 MB anonymous). Those pages stay in the process's
resident set until the kernel is short of memory.

``release_library_pages()`` unmaps them from the process (``madvise(MADV_DONTNEED)``) on
the mappings of the runtimes' shared objects (``RUNTIME_PACKAGES``) that are not writable
and hold no page the process wrote (``Anonymous: 0 kB`` in ``/proc/self/smaps``: a
relocated read-only segment is skipped). On such a mapping the call loses nothing: every
page is the file's, and the next touch maps it again from the page cache (a minor fault,
no disk read while the cache holds it). The pages stay in the page cache as clean,
unmapped file pages, the first the kernel reclaims when it needs memory; no process
holds them. Unlike ``MADV_PAGEOUT``, which the kernel honours only for the file's owner
or a writer (``can_do_file_pageout``), it works for any process: under the shipped
systemd unit (``DynamicUser``, a root-owned ``/opt/edgefleet/venv``) and in the agent
image as well.

**Only on libraries that can no longer be unloaded.** ``MADV_DONTNEED`` on memory that
is not such a mapping would lose data (it zeroes anonymous pages). A library unloaded
between reading ``smaps`` and the call could leave its address range to a heap mapping,
so each library is first pinned (``dlopen(path, RTLD_NOLOAD | RTLD_NODELETE)``: already
loaded, never unloaded from then on; neither runtime unloads its libraries anyway), the
mappings are read again, and only a pinned library's are given back. A library that is
not loaded under that name (a file replaced on disk: ``(deleted)``) is left alone.

A page serving needs comes back on its next use: ``agent.deployment.loading`` calls it
after each load, before the warm-up and the health gate, whose runs map the serving
path's pages again. A model already serving on the same runtime pays that on its next
request (minor faults: 0.6 ms measured on ``tiny-mlp`` on OpenVINO, against 51 ms for a
page-out that reads the pages back from disk). Measured (``tiny-mlp`` on OpenVINO,
2-vCPU AMD EPYC VM, as uid 65534, which owns none of the files): resident 113.6 MB after
a compile and 100 runs, 74.7 MB after the call (1.5 ms), 80.9 MB after 1000 more runs.

Elsewhere (not Linux, no ``dlopen``) it does nothing, and it never raises.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Final

logger = logging.getLogger(__name__)

#: ``madvise`` advice: unmap these pages from the process (``mman-common.h``)
MADV_DONTNEED: Final = 4
#: the packages whose shared libraries are the runtimes' (and their bundled TBB and
#: plugins): nothing else is touched, so the interpreter's and numpy's pages stay
RUNTIME_PACKAGES: Final = ("onnxruntime", "openvino")
#: ``dlopen`` flags that pin a library already loaded and load nothing new (glibc's and
#: musl's values where ``os`` lacks them: not Linux, where nothing is pinned anyway)
PIN_FLAGS: Final = (
    getattr(os, "RTLD_LAZY", 1)
    | getattr(os, "RTLD_NOLOAD", 4)
    | getattr(os, "RTLD_NODELETE", 0x1000)
)


@dataclass(frozen=True)
class Mapping:
    """One mapping of ``/proc/self/smaps``: its range, permissions, file, and the
    resident and anonymous (written: copied-on-write) kB."""

    start: int
    end: int
    perms: str
    path: str
    rss_kb: int = 0
    anonymous_kb: int = 0


@dataclass(frozen=True)
class _Libc:
    madvise: Any
    dlopen: Any


def _libc() -> _Libc | None:
    """libc's ``madvise`` and ``dlopen`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise, dlopen = libc.madvise, libc.dlopen
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    dlopen.restype = ctypes.c_void_p
    return _Libc(madvise, dlopen)


_LIBC = _libc()
#: the libraries pinned so far: never unloaded, so their mappings stay theirs
_PINNED: set[str] = set()
#: one release at a time (loads may run on several threads)
_LOCK = threading.Lock()


def is_shared_object(path: str) -> bool:
    """A mapped file that is a shared library (``libfoo.so``, ``libfoo.so.1.2``,
    ``_module.cpython-311-x86_64-linux-gnu.so``)."""
    name = os.path.basename(path)
    return name.endswith(".so") or ".so." in name


def parse_smaps(text: str) -> list[Mapping]:
    """The mappings of ``/proc/<pid>/smaps`` text (paths decoded as the file system's)."""
    found: list[Mapping] = []
    head: list[str] | None = None
    fields: dict[str, int] = {}

    def close() -> None:
        if head is not None:
            start, end = (int(x, 16) for x in head[0].split("-"))
            path = head[5].strip() if len(head) > 5 else ""
            found.append(
                Mapping(start, end, head[1], path, fields.get("Rss", 0), fields.get("Anonymous", 0))
            )

    for line in text.splitlines():
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in first and not first.endswith(":"):
            close()
            head, fields = line.split(maxsplit=5), {}
        elif first.endswith(":") and head is not None:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[first[:-1]] = int(parts[1])
    close()
    return found


def runtime_dirs() -> list[str]:
    """The package directories of the inference runtimes this process imported."""
    found = []
    for name in RUNTIME_PACKAGES:
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where:
            found.append(os.path.dirname(os.path.realpath(where)) + os.sep)
    return found


def candidates(mappings: list[Mapping], under: list[str]) -> list[Mapping]:
    """The mappings worth giving back: a runtime's shared object below ``under``, not
    writable, resident, with no page the process wrote."""
    prefixes = tuple(under)
    if not prefixes:
        return []
    return [
        m
        for m in mappings
        if "w" not in m.perms
        and not m.anonymous_kb
        and m.rss_kb
        and m.path.startswith(prefixes)
        and is_shared_object(m.path)
    ]


def pin(path: str) -> bool:
    """Whether the library at ``path`` is loaded, now pinned so that it is never
    unloaded (module docstring); loads nothing."""
    if path in _PINNED:
        return True
    if _LIBC is None:
        return False
    if not _LIBC.dlopen(os.fsencode(path), PIN_FLAGS):
        return False
    _PINNED.add(path)
    return True


def _read_smaps() -> list[Mapping]:
    with open("/proc/self/smaps", encoding="utf-8", errors="surrogateescape") as f:
        return parse_smaps(f.read())


def release_library_pages() -> int:
    """Unmap the resident pages of the runtimes' read-only library mappings (module
    docstring); the kB they held. Never raises: a load must not fail because of it."""
    under = runtime_dirs()
    if _LIBC is None or not under:
        return 0
    try:
        with _LOCK:
            chosen = candidates(_read_smaps(), under)
            if any(m.path not in _PINNED for m in chosen):
                for path in {m.path for m in chosen}:
                    pin(path)
                chosen = candidates(_read_smaps(), under)  # as they are, now pinned
            given = 0
            for m in chosen:
                if (
                    m.path in _PINNED
                    and _LIBC.madvise(m.start, m.end - m.start, MADV_DONTNEED) == 0
                ):
                    given += m.rss_kb
            return given
    except Exception as exc:  # best effort, never a failed load
        logger.debug("library pages not given back: %s", exc)
        return 0
