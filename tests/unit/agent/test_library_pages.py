"""Giving back the runtimes' library pages after a load (``agent.runners.pages``): which
mappings it takes, which libraries it pins, and a real ONNX Runtime session whose pages
leave the resident set and that still answers the same after."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.runners import pages
from agent.runners.loaded_libraries import Range, pin
from agent.runners.pages import Mapping, candidates, inside, is_shared_object, parse_smaps
from tests.support.onnx_models import two_input_model

SMAPS = """\
7f0000000000-7f0000001000 r--p 00000000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000001000-7f0000005000 r-xp 00001000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Rss:                  16 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
7f0000005000-7f0000006000 r--p 00005000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
7f0000006000-7f0000007000 rw-p 00006000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
7f0000007000-7f0000008000 r-xp 00000000 08:01 12    /v/ort/capi/_state.cpython-311.so
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000008000-7f0000009000 r--p 00000000 08:01 13    /v/ort/capi/model.onnx
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000009000-7f000000a000 r-xp 00000000 08:01 14    /v/np/_umath.cpython-311.so
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
7f000000a000-7f000000b000 rw-p 00000000 00:00 0
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                  [vdso]
Rss:                   4 kB
"""


def test_shared_objects_are_told_by_their_name() -> None:
    assert is_shared_object("/x/libtbb.so.12")
    assert is_shared_object("/x/_pybind.cpython-311-x86_64-linux-gnu.so")
    assert not is_shared_object("/x/model.onnx") and not is_shared_object("[vdso]")
    assert not is_shared_object("/x/libs.something")


def test_smaps_are_read_with_their_resident_and_written_pages() -> None:
    found = parse_smaps(SMAPS)
    assert len(found) == 9
    assert found[0] == Mapping(
        0x7F0000000000, 0x7F0000001000, "r--p", "/v/ort/capi/libonnxruntime.so.1.32.0", 4, 0
    )
    assert (found[1].rss_kb, found[2].anonymous_kb) == (16, 4)
    assert found[7].path == "" and found[8].path == "[vdso]"
    # with prefixes: only those mappings, found by their path, the same figures
    ort = parse_smaps(SMAPS, ("/v/ort/",))
    assert ort == [m for m in found if m.path.startswith("/v/ort/")] and len(ort) == 6
    assert parse_smaps(SMAPS, ("/elsewhere/",)) == []
    assert parse_smaps(SMAPS, ("/v/ort/", "/v/ort/capi/")) == ort  # each mapping once
    # a record that does not say what was written is never taken as unwritten
    [m] = parse_smaps(SMAPS.split("Anonymous")[0], ("/v/",))
    assert (m.rss_kb, m.anonymous_kb, m.swap_kb) == (4, -1, -1) and candidates([m], ["/v/"]) == []


def test_only_resident_unwritten_read_only_runtime_libraries_are_taken() -> None:
    chosen = candidates(parse_smaps(SMAPS), ["/v/ort/"])
    # never the relocated read-only segment (written: anonymous pages), the writable one,
    # an untouched mapping, a model file, numpy's, an anonymous mapping or the vdso
    assert [(m.start, m.end) for m in chosen] == [
        (0x7F0000000000, 0x7F0000001000),
        (0x7F0000001000, 0x7F0000005000),
    ]
    assert candidates(parse_smaps(SMAPS), []) == []
    # written pages swapped out leave Anonymous at 0: the mapping is still not taken
    swapped = SMAPS.replace(
        "Rss:                  16 kB", "Rss:                  16 kB\nSwap: 4 kB"
    )
    assert parse_smaps(swapped)[1].swap_kb == 4
    assert [m.start for m in candidates(parse_smaps(swapped), ["/v/ort/"])] == [0x7F0000000000]


class _Recorder:
    """``madvise`` as the release calls it: records, changes nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.pins: list[str] = []  # the paths it was asked to pin

    def __call__(self, start: int, length: int, advice: int) -> int:
        self.calls.append((start, length, advice))
        return 0


def _fake_process(
    monkeypatch: pytest.MonkeyPatch, pinned: dict[str, tuple[Range, ...]]
) -> _Recorder:
    recorder = _Recorder()

    def pin(path: str) -> tuple[Range, ...]:
        recorder.pins.append(path)
        return pinned.get(path, ())

    monkeypatch.setattr(pages, "_MADVISE", recorder)
    monkeypatch.setattr(pages, "_read_smaps", lambda under=None: parse_smaps(SMAPS, under))
    monkeypatch.setattr(pages, "runtime_dirs", lambda: ["/v/ort/"])
    monkeypatch.setattr(pages, "pin", pin)
    monkeypatch.setattr(pages, "_PINNED", {})
    monkeypatch.setattr(pages, "_REFUSED", set())
    return recorder


def test_only_the_parts_inside_a_pinned_librarys_own_ranges_are_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = "/v/ort/capi/libonnxruntime.so.1.32.0"
    # the library's file bytes lie at ...1000-...3000: the first mapping (a separate
    # mapping of the same file, say) is outside, the second half inside
    recorder = _fake_process(monkeypatch, {library: ((0x7F0000001000, 0x7F0000003000),)})
    assert pages.release_library_pages() == 16
    assert recorder.calls == [
        (0x7F0000001000, 0x2000, pages.MADV_COLD),
        (0x7F0000001000, 0x2000, pages.MADV_DONTNEED),
    ]
    assert inside(Mapping(0x1000, 0x5000, "r-xp", library), ((0, 0x2000), (0x4000, 0x9000))) == [
        (0x1000, 0x2000),
        (0x4000, 0x5000),
    ]


def test_a_library_that_cannot_be_pinned_is_left_alone_and_not_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _fake_process(monkeypatch, {})
    assert pages.release_library_pages() == 0
    assert pages.release_library_pages() == 0
    assert recorder.calls == []
    assert recorder.pins == ["/v/ort/capi/libonnxruntime.so.1.32.0"]


def _runtime_library_rss_kb() -> int:
    with open("/proc/self/smaps", encoding="utf-8") as f:
        return sum(m.rss_kb for m in candidates(parse_smaps(f.read()), pages.runtime_dirs()))


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's madvise")


@linux_only
def test_only_a_loaded_library_is_pinned(tmp_path: Path) -> None:
    import onnxruntime as ort

    library = next(
        m.path
        for m in candidates(pages._read_smaps(), pages.runtime_dirs())
        if m.path.startswith(os.path.dirname(os.path.realpath(ort.__file__)))
    )
    ranges = pin(library)
    # its read-only mappings lie inside the ranges of its file's bytes
    own = [m for m in pages._read_smaps() if m.path == library and "w" not in m.perms]
    assert own and all(inside(m, ranges) == [(m.start, m.end)] for m in own)
    # a copy of a loaded library is another file: not loaded, so not pinned (nor loaded)
    with open("/proc/self/maps", encoding="utf-8") as f:
        mapped = {line.split()[-1] for line in f if is_shared_object(line.split()[-1])}
    copy = tmp_path / "lib_copy.so"
    shutil.copyfile(min(mapped, key=lambda path: os.stat(path).st_size), copy)
    assert pin(str(copy)) == ()
    assert pin(str(tmp_path / "gone.so")) == ()
    (tmp_path / "text.so").write_text("not an ELF file")
    assert pin(str(tmp_path / "text.so")) == ()
    with open("/proc/self/maps", encoding="utf-8") as f:
        assert str(copy) not in f.read()


@linux_only
def test_a_session_answers_the_same_after_its_library_pages_are_given_back(
    tmp_path: Path,
) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # no thread touches them
    session = ort.InferenceSession(str(two_input_model(tmp_path / "m.onnx")), options)
    feeds = {"x": np.arange(8, dtype=np.float32).reshape(2, 4), "ids": np.array([3, 4])}
    before = session.run(None, feeds)
    assert os.path.dirname(os.path.realpath(ort.__file__)) + os.sep in pages.runtime_dirs()
    resident_kb = _runtime_library_rss_kb()
    given_kb = pages.release_library_pages()
    # unmapped whoever owns the files (root or not): the pages left the resident set
    assert given_kb >= resident_kb // 2 > 0
    assert _runtime_library_rss_kb() < resident_kb // 2
    after = session.run(None, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
