"""Giving back the runtimes' library pages after a load (``agent.runners.pages``): which
mappings it takes, and a real ONNX Runtime session that still answers the same after."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.runners import pages
from agent.runners.pages import Mapping, candidates, is_shared_object, may_page_out, parse_smaps
from tests.support.onnx_models import two_input_model

SMAPS = """\
7f0000000000-7f0000001000 r--p 00000000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
7f0000001000-7f0000005000 r-xp 00001000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Rss:                  16 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
7f0000005000-7f0000006000 r--p 00005000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Rss:                   4 kB
Anonymous:             4 kB
7f0000006000-7f0000007000 rw-p 00006000 08:01 11    /v/ort/capi/libonnxruntime.so.1.32.0
Rss:                   4 kB
Anonymous:             4 kB
7f0000007000-7f0000008000 r-xp 00000000 08:01 12    /v/ort/capi/_state.cpython-311.so
Rss:                   0 kB
Anonymous:             0 kB
7f0000008000-7f0000009000 r--p 00000000 08:01 13    /v/ort/capi/model.onnx
Rss:                   4 kB
Anonymous:             0 kB
7f0000009000-7f000000a000 r-xp 00000000 08:01 14    /v/np/_umath.cpython-311.so
Rss:                   4 kB
Anonymous:             0 kB
7f000000a000-7f000000b000 rw-p 00000000 00:00 0
Rss:                   4 kB
Anonymous:             4 kB
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


def test_only_resident_unwritten_read_only_runtime_libraries_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages, "may_page_out", lambda path: True)
    chosen = candidates(parse_smaps(SMAPS), ["/v/ort/"])
    # never the relocated read-only segment (written: anonymous pages), the writable one,
    # an untouched mapping, a model file, numpy's, an anonymous mapping or the vdso
    assert [(m.start, m.end) for m in chosen] == [
        (0x7F0000000000, 0x7F0000001000),
        (0x7F0000001000, 0x7F0000005000),
    ]
    assert candidates(parse_smaps(SMAPS), []) == []
    monkeypatch.setattr(pages, "may_page_out", lambda path: False)  # not its files
    assert candidates(parse_smaps(SMAPS), ["/v/ort/"]) == []


def test_a_file_may_be_paged_out_by_its_owner_only(tmp_path: Path) -> None:
    mine = tmp_path / "libmine.so"
    mine.write_bytes(b"\0")
    assert may_page_out(str(mine))
    assert not may_page_out(str(tmp_path / "gone.so"))
    if os.geteuid() != 0:  # root may write anything
        assert not may_page_out("/bin/sh")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's")
def test_a_session_answers_the_same_after_its_library_pages_are_given_back(
    tmp_path: Path,
) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(two_input_model(tmp_path / "m.onnx")))
    feeds = {"x": np.arange(8, dtype=np.float32).reshape(2, 4), "ids": np.array([3, 4])}
    before = session.run(None, feeds)
    assert os.path.dirname(os.path.realpath(ort.__file__)) + os.sep in pages.runtime_dirs()
    assert pages.release_library_pages() >= 0  # what the kernel takes depends on the box
    after = session.run(None, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
