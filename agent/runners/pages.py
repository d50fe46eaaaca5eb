"""Give back the shared-library pages a model load touched and serving does not use.

Compiling a model runs code that serving never runs again: OpenVINO's CPU plugin
(``libopenvino_intel_cpu_plugin.so``, mapped at the first ``compile_model``) leaves
~37 MB of its pages resident after compiling ``tiny-mlp``, most of them graph
transformations and kernel generators (``bench.footprint``: the OpenVINO agent's own
share was 37.5 MB file-backed, 18.5 MB anonymous). Those pages stay in the process's
resident set, and in its cgroup's memory, until the kernel is short of memory.

``release_library_pages()`` asks the kernel to reclaim them (``madvise(MADV_PAGEOUT)``,
Linux 5.4+) on every mapping of the runtimes' shared objects (``RUNTIME_PACKAGES``) that
is not writable: code and read-only data, never a page the process wrote (relocated data
is a writable or a copied-on-write private page, which PAGEOUT leaves alone without
swap). The kernel reclaims only pages no other process maps. A page serving needs comes
back on its next use, read from the page cache or the disk: ``agent.deployment.loading``
calls it after each load, before the warm-up and the health gate, whose runs bring the
serving path's pages back. A model already serving on the same runtime pays that once,
on its next request. Measured (``tiny-mlp`` on OpenVINO, 2-vCPU Xeon VM): resident 115
MB after a compile and 100 runs, 74 MB after the call, 83 MB after 1000 more runs; the
first run after it took 18 ms (0.03 ms before), the next ones as before. In the agent
(``bench.footprint``): own share on OpenVINO 55.5 -> 31.3 MB, on ONNX Runtime 38.0 ->
33.6 MB; every library on the process (the interpreter's, numpy's too) gave ~0.3 MB
more, not worth the other models' first requests.

Elsewhere (not Linux, an older kernel) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from typing import Any, Final

logger = logging.getLogger(__name__)

#: ``madvise`` advice: reclaim these pages now (Linux 5.4+, ``mman-common.h``)
MADV_PAGEOUT: Final = 21
#: the packages whose shared libraries are the runtimes' (and their bundled TBB and
#: plugins): nothing else is touched, so the interpreter's and numpy's pages stay
RUNTIME_PACKAGES: Final = ("onnxruntime", "openvino")


def _madvise() -> Any:
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


def is_shared_object(path: str) -> bool:
    """A mapped file that is a shared library (``libfoo.so``, ``libfoo.so.1.2``,
    ``_module.cpython-311-x86_64-linux-gnu.so``)."""
    name = os.path.basename(path)
    return name.endswith(".so") or ".so." in name


def runtime_dirs() -> list[str]:
    """The package directories of the inference runtimes this process imported."""
    found = []
    for name in RUNTIME_PACKAGES:
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where:
            found.append(os.path.dirname(os.path.realpath(where)) + os.sep)
    return found


def read_only_library_ranges(maps: str, under: list[str]) -> list[tuple[int, int]]:
    """The ``(start, end)`` of every mapping of a shared object below one of the
    directories ``under`` that is not writable, from the text of ``/proc/<pid>/maps``."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1]:
            continue
        path = fields[5].strip()
        if not is_shared_object(path) or not path.startswith(tuple(under)):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        ranges.append((start, end))
    return ranges


def release_library_pages() -> int:
    """Ask the kernel to reclaim the resident pages of the read-only mappings of the
    inference runtimes' shared libraries (module docstring); how many it took."""
    under = runtime_dirs()
    if _MADVISE is None or not under:
        return 0
    try:
        with open("/proc/self/maps") as f:
            ranges = read_only_library_ranges(f.read(), under)
    except OSError:
        return 0
    taken = 0
    for start, end in ranges:
        if _MADVISE(start, end - start, MADV_PAGEOUT) == 0:
            taken += 1
        elif ctypes.get_errno() == 22:  # EINVAL: no MADV_PAGEOUT in this kernel
            logger.debug("this kernel has no MADV_PAGEOUT: library pages are kept")
            return taken
    return taken
