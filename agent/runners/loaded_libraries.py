"""Pin a shared library this process has loaded, and say where its file's bytes lie.

``pin(path)`` asks the dynamic loader for the library already loaded from ``path``
(``dlopen(path, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE)``: it loads nothing and runs no
constructor; an object not loaded gives NULL), which marks it never to be unloaded. From
then on the address ranges of its loadable segments are its own for the life of the
process. ``pin`` returns those ranges, the file-backed part of each ``PT_LOAD``
segment (``p_filesz``, page-aligned) at the object's load bias (``dlinfo(...,
RTLD_DI_LINKMAP)``: ``link_map.l_addr``), read from the file's ELF program headers.
Another mapping of the same file (a symbolizer that maps it to read it) lies elsewhere
and is not in them.

64-bit little-endian ELF only (x86-64, aarch64): anything else, or a library that is not
loaded, gives no ranges, and ``agent.runners.pages`` then leaves it alone.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any, Final

#: ``dlopen`` flags that find a library already loaded, load nothing new, and keep it
#: loaded for good (glibc's and musl's values where ``os`` lacks them: not Linux)
PIN_FLAGS: Final = (
    getattr(os, "RTLD_LAZY", 1)
    | getattr(os, "RTLD_NOLOAD", 4)
    | getattr(os, "RTLD_NODELETE", 0x1000)
)
#: ``dlinfo`` request for the object's ``struct link_map`` (``dlfcn.h``)
RTLD_DI_LINKMAP: Final = 2
#: ``p_type`` of a loadable segment (``elf.h``)
PT_LOAD: Final = 1
PAGE: Final = mmap.PAGESIZE

Range = tuple[int, int]


@dataclass(frozen=True)
class _Loader:
    dlopen: Any
    dlinfo: Any


def _loader() -> _Loader | None:
    """libc's ``dlopen`` and ``dlinfo`` on 64-bit Linux, else None."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        libc = ctypes.CDLL(None)
        dlopen, dlinfo = libc.dlopen, libc.dlinfo
    except (OSError, AttributeError):
        return None
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    dlopen.restype = ctypes.c_void_p
    dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    dlinfo.restype = ctypes.c_int
    return _Loader(dlopen, dlinfo)


_LOADER = _loader()


def file_segments(header: bytes, table: bytes) -> list[tuple[int, int]]:
    """``(p_vaddr, p_filesz)`` of each loadable segment with bytes in the file, from a
    64-bit little-endian ELF header and its program header table."""
    phentsize, phnum = struct.unpack_from("<HH", header, 54)
    found = []
    for i in range(phnum):
        p_type, _flags, _offset, vaddr, _paddr, filesz = struct.unpack_from(
            "<IIQQQQ", table, i * phentsize
        )
        if p_type == PT_LOAD and filesz:
            found.append((vaddr, filesz))
    return found


def _program_headers(path: str) -> tuple[bytes, bytes] | None:
    """The ELF header and program header table of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4:6] != b"\x02\x01":
            return None
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        if phentsize < 48:
            return None
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return (header, table) if len(table) == phentsize * phnum else None


def page_ranges(bias: int, segments: list[tuple[int, int]]) -> tuple[Range, ...]:
    """The page-aligned address ranges of ``(p_vaddr, p_filesz)`` segments at ``bias``."""
    ranges = []
    for vaddr, filesz in segments:
        start = bias + vaddr
        ranges.append((start - start % PAGE, -(-(start + filesz) // PAGE) * PAGE))
    return tuple(ranges)


def pin(path: str) -> tuple[Range, ...]:
    """Pin the library loaded from ``path`` (module docstring); the address ranges of its
    file's bytes, or none when it is not loaded or not read here. Loads nothing."""
    if _LOADER is None:
        return ()
    try:
        headers = _program_headers(path)
    except OSError:
        return ()
    if headers is None:
        return ()
    handle = _LOADER.dlopen(os.fsencode(path), PIN_FLAGS)
    if not handle:
        return ()
    link_map = ctypes.c_void_p()
    if _LOADER.dlinfo(handle, RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
        return ()
    if not link_map.value:
        return ()
    bias = ctypes.c_size_t.from_address(link_map.value).value  # link_map.l_addr
    return page_ranges(bias, file_segments(*headers))
