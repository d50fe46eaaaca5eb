"""Give back the shared-library pages a model load touched and serving does not use.

Compiling a model runs code that serving never runs again: OpenVINO's CPU plugin
(``libopenvino_intel_cpu_plugin.so``, mapped at the first ``compile_model``) leaves
~37 MB of its pages resident after compiling ``tiny-mlp``, most of them graph
transformations and kernel generators (``bench.footprint``: the OpenVINO agent's own
share was 37.5 MB file-backed, 18.5 MB anonymous). Those pages stay in the process's
resident set, and in its cgroup's memory, until the kernel is short of memory.

``release_library_pages()`` asks the kernel to reclaim them (``madvise(MADV_PAGEOUT)``,
Linux 5.4+) on the mappings of the runtimes' shared objects (``RUNTIME_PACKAGES``) that
are not writable and hold no page the process wrote (``Anonymous: 0 kB`` in
``/proc/self/smaps``: a relocated read-only segment is skipped, so nothing hot is pushed
to swap where there is swap). PAGEOUT never loses data; the kernel reclaims only pages no
other process maps.

**Only where the process may page the file out.** The kernel pages out a file's pages
only for a caller that owns the file or may write it (``can_do_file_pageout``, mm/
madvise.c); for anyone else the call succeeds and does nothing. So it works when the
agent runs as the owner of its virtual environment (``make install``, ``make demo``,
``bench.footprint``), and **not** under the shipped systemd unit (``DynamicUser``, a
root-owned ``/opt/edgefleet/venv``) nor in the agent image (user ``edgefleet``, a
root-owned venv), which keep the code read-only to the agent on purpose. Files the
process may not page out are skipped.

A page serving needs comes back on its next use: ``agent.deployment.loading`` calls it
after each load, before the warm-up and the health gate, whose runs bring the serving
path's pages back. A model already serving on the same runtime pays that once, on its
next request (4-16 ms measured on ``tiny-mlp``). Measured (``tiny-mlp`` on OpenVINO,
2-vCPU Xeon VM, as the owner): resident 115 MB after a compile and 100 runs, 74 MB after
the call, 83 MB after 1000 more runs. In the agent (``bench.footprint``): own share on
OpenVINO 55.5 -> 31.2 MB, on ONNX Runtime 38.0 -> 35.1 MB; every library of the process
(the interpreter's, numpy's too) gave ~0.3 MB more, not worth the other models' first
requests.

Elsewhere (not Linux, an older kernel) it does nothing, and it never raises.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import sys
from dataclasses import dataclass
from typing import Any, Final

logger = logging.getLogger(__name__)

#: ``madvise`` advice: reclaim these pages now (Linux 5.4+, ``mman-common.h``)
MADV_PAGEOUT: Final = 21
#: the packages whose shared libraries are the runtimes' (and their bundled TBB and
#: plugins): nothing else is touched, so the interpreter's and numpy's pages stay
RUNTIME_PACKAGES: Final = ("onnxruntime", "openvino")


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


def _madvise() -> Any:
    """libc's ``madvise``, if this kernel takes MADV_PAGEOUT (probed once on a page of
    its own), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
        function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        function.restype = ctypes.c_int
        with mmap.mmap(-1, mmap.PAGESIZE) as page:
            address = ctypes.addressof(ctypes.c_char.from_buffer(page))
            taken = function(address, mmap.PAGESIZE, MADV_PAGEOUT) == 0
    except (OSError, AttributeError, ValueError, BufferError, TypeError):
        return None
    return function if taken else None


_MADVISE = _madvise()


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


def may_page_out(path: str) -> bool:
    """Whether the kernel pages out this file's pages for this process: it owns the
    file or may write it (module docstring)."""
    try:
        return os.stat(path).st_uid == os.geteuid() or os.access(path, os.W_OK)
    except OSError:
        return False


def candidates(mappings: list[Mapping], under: list[str]) -> list[Mapping]:
    """The mappings worth paging out: a runtime's shared object below ``under``, not
    writable, resident, with no page the process wrote, in a file it may page out."""
    prefixes = tuple(under)
    allowed: dict[str, bool] = {}
    chosen = []
    for m in mappings:
        if "w" in m.perms or m.anonymous_kb or not m.rss_kb or not prefixes:
            continue
        if not m.path.startswith(prefixes) or not is_shared_object(m.path):
            continue
        if m.path not in allowed:
            allowed[m.path] = may_page_out(m.path)
        if allowed[m.path]:
            chosen.append(m)
    return chosen


def release_library_pages() -> int:
    """Ask the kernel to reclaim the resident pages of the runtimes' read-only library
    mappings (module docstring); the kB they held (what was asked back, not a promise).
    Never raises: a load must not fail because of it."""
    under = runtime_dirs()
    if _MADVISE is None or not under:
        return 0
    try:
        with open("/proc/self/smaps", encoding="utf-8", errors="surrogateescape") as f:
            chosen = candidates(parse_smaps(f.read()), under)
        asked = 0
        for m in chosen:
            if _MADVISE(m.start, m.end - m.start, MADV_PAGEOUT) == 0:
                asked += m.rss_kb
            # else: the range changed since it was read, or is locked: the next one
        return asked
    except Exception as exc:  # best effort, never a failed load
        logger.debug("library pages not given back: %s", exc)
        return 0
