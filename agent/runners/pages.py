"""Give back the shared-library pages a model load touched and serving does not use.

Compiling a model runs code that serving never runs again: OpenVINO's CPU plugin
(``libopenvino_intel_cpu_plugin.so``, mapped at the first ``compile_model``) leaves
~37 MB of its pages resident after compiling ``tiny-mlp``, most of them graph
transformations and kernel generators (``bench.footprint``: the OpenVINO agent's own
share was 37.5 MB file-backed, 18.5 MB anonymous). Those pages stay in the process's
resident set until the kernel is short of memory.

``release_library_pages()`` unmaps them from the process (``madvise(MADV_DONTNEED)``,
after ``MADV_COLD``) on the mappings of the runtimes' shared objects
(``RUNTIME_PACKAGES``) that are not writable and hold no page the process wrote
(``Anonymous: 0 kB`` and ``Swap: 0 kB`` in ``/proc/self/smaps``: a relocated read-only
segment is skipped, resident or swapped out). On such a mapping the call loses nothing:
every page is the file's, and the next touch maps it again from the page cache (a minor
fault, no disk read while the cache holds it). What it lowers is the process's resident
set (RSS, PSS), not memory in use: the pages stay in the page cache as clean file pages,
marked cold, which the kernel reclaims before anything in use, and stay charged to the
agent's cgroup until it does (``MemoryCurrent`` of the unit counts them; a
``MemoryHigh``/``MemoryMax`` reclaims them first). Unlike ``MADV_PAGEOUT``, which the
kernel honours only for the file's owner or a writer (``can_do_file_pageout``), it works
for any process: under the shipped systemd unit (``DynamicUser``, a root-owned
``/opt/edgefleet/venv``) and in the agent image as well.

**Only a pinned library's own ranges.** ``MADV_DONTNEED`` on memory that is not such a
mapping would lose data (it zeroes anonymous pages). A library unloaded between reading
``smaps`` and the call could leave its address range to a heap mapping, and another
mapping of the same file (a symbolizer reading it) could be unmapped and replaced. So
each library is first pinned (``agent.runners.loaded_libraries.pin``: never unloaded from
then on; neither runtime unloads its libraries anyway), which also gives the address
ranges of its file's bytes; the mappings are read again, and only their parts inside
those ranges are given back. A path that is not a loaded library under that name (a file
replaced on disk shows ``(deleted)``) is left alone.

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
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from agent.runners.loaded_libraries import Range, pin

logger = logging.getLogger(__name__)

#: ``madvise`` advice: unmap these pages from the process (``mman-common.h``)
MADV_DONTNEED: Final = 4
#: ``madvise`` advice: move these pages to the inactive list first (Linux 5.4+; unlike
#: PAGEOUT it needs no ownership of the file), so unmapped they are the first reclaimed
MADV_COLD: Final = 20
#: the packages whose shared libraries are the runtimes' (and their bundled TBB and
#: plugins): nothing else is touched, so the interpreter's and numpy's pages stay
RUNTIME_PACKAGES: Final = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Mapping:
    """One mapping of ``/proc/self/smaps``: its range, permissions, file, and the
    resident and anonymous (written: copied-on-write) kB (-1: smaps did not say, taken as
    written)."""

    start: int
    end: int
    perms: str
    path: str
    rss_kb: int = 0
    anonymous_kb: int = 0
    #: written pages swapped out: ``Anonymous`` no longer counts them, and MADV_DONTNEED
    #: would drop them (the file's unrelocated bytes come back on the next touch)
    swap_kb: int = 0


def _madvise() -> Any:
    """libc's ``madvise`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_MADVISE = _madvise()
#: the libraries pinned so far, with the address ranges of their files' bytes: never
#: unloaded, so those ranges stay theirs
_PINNED: dict[str, tuple[Range, ...]] = {}
#: the paths that could not be pinned (not loaded under that name, not 64-bit ELF)
_REFUSED: set[str] = set()
#: one release at a time (loads may run on several threads)
_LOCK = threading.Lock()


def is_shared_object(path: str) -> bool:
    """A mapped file that is a shared library (``libfoo.so``, ``libfoo.so.1.2``,
    ``_module.cpython-311-x86_64-linux-gnu.so``)."""
    name = os.path.basename(path)
    return name.endswith(".so") or ".so." in name


#: the first line of each mapping in ``smaps``: ``start-end perms offset dev inode [path]``
_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)$", re.MULTILINE)


def _field_kb(block: str, name: str, missing: int = 0) -> int:
    """``name:  N kB`` of one mapping's lines, ``missing`` when absent or unreadable."""
    at = block.find(f"\n{name}:")
    if at < 0:
        return missing
    value = block[at + len(name) + 2 : block.find("\n", at + 1)].split()
    return int(value[0]) if value and value[0].isdigit() else missing


def _heads(text: str, under: tuple[str, ...] | None) -> Iterator[re.Match[str]]:
    """The header lines of the mappings, all or those whose path starts with ``under``'s
    prefixes (found by the prefix: the other ~400 mappings are not scanned at all)."""
    if under is None:
        yield from _HEAD.finditer(text)
        return
    for prefix in dict.fromkeys(p for p in under if p):  # "" would try every offset
        at = text.find(prefix)
        while at >= 0:
            head = _HEAD.match(text, text.rfind("\n", 0, at) + 1)
            if head is not None and head.start(4) == at:  # the path, not a field's text
                yield head
            at = text.find(prefix, at + 1)


def parse_smaps(text: str, under: tuple[str, ...] | None = None) -> list[Mapping]:
    """The mappings of ``/proc/<pid>/smaps`` text (paths decoded as the file system's), in
    address order; with ``under``, only those whose path starts with one of its prefixes
    (a process with the runtimes loaded has ~450 mappings in ~10 000 lines: parsed line
    by line in Python, that took ~35 ms a load)."""
    found: dict[int, Mapping] = {}  # by header offset: a path under two prefixes counts once
    for head in _heads(text, under):
        following = _HEAD.search(text, head.end())
        block = text[head.end() : following.start() if following else len(text)]
        # written pages unknown (a field missing or unreadable): -1, never taken
        rss = _field_kb(block, "Rss")
        anonymous, swap = _field_kb(block, "Anonymous", -1), _field_kb(block, "Swap", -1)
        start, end, perms, path = head.groups()
        found[head.start()] = Mapping(
            int(start, 16), int(end, 16), perms, path.strip(), rss, anonymous, swap
        )
    return sorted(found.values(), key=lambda m: m.start)


def runtime_dirs() -> tuple[str, ...]:
    """The package directories of the inference runtimes this process imported."""
    found = []
    for name in RUNTIME_PACKAGES:
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where:
            found.append(os.path.dirname(os.path.realpath(where)) + os.sep)
    return tuple(found)


def candidates(mappings: list[Mapping], under: Sequence[str]) -> list[Mapping]:
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
        and not m.swap_kb
        and m.rss_kb
        and m.path.startswith(prefixes)
        and is_shared_object(m.path)
    ]


def inside(mapping: Mapping, ranges: tuple[Range, ...]) -> list[Range]:
    """The parts of ``mapping`` that lie in ``ranges`` (a pinned library's own)."""
    parts = []
    for start, end in ranges:
        low, high = max(start, mapping.start), min(end, mapping.end)
        if low < high:
            parts.append((low, high))
    return parts


def _pin_new(paths: set[str]) -> bool:
    """Pin the libraries of ``paths`` not pinned or refused yet; whether any was."""
    pinned = False
    for path in paths - _PINNED.keys() - _REFUSED:
        ranges = pin(path)
        if ranges:
            _PINNED[path], pinned = ranges, True
        else:
            _REFUSED.add(path)
    return pinned


def _read_smaps(under: tuple[str, ...] | None = None) -> list[Mapping]:
    with open("/proc/self/smaps", encoding="utf-8", errors="surrogateescape") as f:
        return parse_smaps(f.read(), under)


def release_library_pages() -> int:
    """Unmap the resident pages of the runtimes' read-only library mappings (module
    docstring); the kB they held. Never raises: a load must not fail because of it."""
    under = runtime_dirs()
    if _MADVISE is None or not under:
        return 0
    try:
        with _LOCK:
            chosen = candidates(_read_smaps(under), under)
            if _pin_new({m.path for m in chosen}):
                chosen = candidates(_read_smaps(under), under)  # as they are, now pinned
            given = 0
            for m in chosen:
                parts = inside(m, _PINNED.get(m.path, ()))
                for start, end in parts:
                    _MADVISE(start, end - start, MADV_COLD)  # best effort
                    _MADVISE(start, end - start, MADV_DONTNEED)
                given += m.rss_kb if parts else 0
            return given
    except Exception as exc:  # best effort, never a failed load
        logger.debug("library pages not given back: %s", exc)
        return 0
