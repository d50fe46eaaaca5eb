"""Giving back the runtimes' library pages after a load (``agent.runners.pages``): which
mappings it takes, and a real ONNX Runtime session that still answers the same after."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.runners import pages
from agent.runners.pages import is_shared_object, read_only_library_ranges
from tests.support.onnx_models import two_input_model

MAPS = """\
7f0000000000-7f0000001000 r--p 00000000 08:01 11 /v/ort/capi/libonnxruntime.so.1.32.0
7f0000001000-7f0000005000 r-xp 00001000 08:01 11 /v/ort/capi/libonnxruntime.so.1.32.0
7f0000005000-7f0000006000 rw-p 00005000 08:01 11 /v/ort/capi/libonnxruntime.so.1.32.0
7f0000006000-7f0000007000 r-xp 00000000 08:01 12 /v/ort/capi/_state.cpython-311-x86_64-linux-gnu.so
7f0000007000-7f0000008000 r--p 00000000 08:01 13 /v/ort/capi/model.onnx
7f0000008000-7f0000009000 r-xp 00000000 08:01 14 /v/np/_umath.cpython-311-x86_64-linux-gnu.so
7f0000009000-7f000000a000 r-xp 00000000 08:01 15 /usr/lib/x86_64-linux-gnu/libc.so.6
7f000000a000-7f000000b000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
"""


def test_shared_objects_are_told_by_their_name() -> None:
    assert is_shared_object("/x/libtbb.so.12")
    assert is_shared_object("/x/_pybind.cpython-311-x86_64-linux-gnu.so")
    assert not is_shared_object("/x/model.onnx") and not is_shared_object("[vdso]")
    assert not is_shared_object("/x/libs.something")


def test_only_the_runtimes_read_only_library_mappings_are_taken() -> None:
    ranges = read_only_library_ranges(MAPS, ["/v/ort/"])
    assert ranges == [
        (0x7F0000000000, 0x7F0000001000),  # read-only data
        (0x7F0000001000, 0x7F0000005000),  # code
        (0x7F0000006000, 0x7F0000007000),  # the Python extension
    ]  # never the writable mapping, a model file, numpy's, libc's or the vdso
    assert read_only_library_ranges(MAPS, []) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's")
def test_a_session_answers_the_same_after_its_library_pages_are_given_back(
    tmp_path: Path,
) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(two_input_model(tmp_path / "m.onnx")))
    feeds = {"x": np.arange(8, dtype=np.float32).reshape(2, 4), "ids": np.array([3, 4])}
    before = session.run(None, feeds)
    assert os.path.dirname(os.path.realpath(ort.__file__)) + os.sep in pages.runtime_dirs()
    assert pages.release_library_pages() > 0
    after = session.run(None, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
