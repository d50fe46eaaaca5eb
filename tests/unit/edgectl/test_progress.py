"""The upload progress bar: pure formatting with a fake clock; quiet when not a terminal."""

from __future__ import annotations

import io

from edgectl.progress import UploadProgress, format_bytes, render_progress

MIB = 1024 * 1024


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * MIB, 3 * 1024 * MIB)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_render_progress() -> None:
    line = render_progress(3 * MIB, 12 * MIB, 2.0, label="uploading det 1.5.0", width=8)
    assert line == "uploading det 1.5.0 [##------]  25%  3.0 MiB / 12.0 MiB  1.5 MiB/s"
    assert render_progress(0, 0, 0.0, label="x", width=4) == "x [####] 100%  0 B / 0 B  -"
    assert "[########] 100%" in render_progress(20, 10, 1.0, label="x", width=8)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_redraws_in_place_at_most_every_interval() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = UploadProgress(4 * MIB, label="up", stream=out, enabled=True, clock=clock)
    bar.advance(MIB)
    clock.now += 0.05
    bar.advance(MIB)  # within the interval: not drawn
    clock.now += 0.15
    bar.advance(MIB)
    clock.now += 0.8
    bar.advance(MIB)
    bar.finish()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 4 and all(f.endswith("\x1b[K") for f in frames[:-1])
    assert frames[0].startswith("up [######------------------]  25%  1.0 MiB / 4.0 MiB")
    assert "  75%  3.0 MiB / 4.0 MiB  15.0 MiB/s" in frames[1]
    assert frames[-1].endswith("100%  4.0 MiB / 4.0 MiB  4.0 MiB/s\x1b[K\n")


def test_progress_is_quiet_when_not_a_terminal() -> None:
    out = io.StringIO()  # isatty() is False
    bar = UploadProgress(10, label="up", stream=out)
    bar.advance(10)
    bar.finish()
    assert out.getvalue() == "" and bar.done == 10
