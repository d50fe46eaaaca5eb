"""The upload progress bar ``edgectl push model`` draws on stderr: bytes, %, rate.

``render_progress`` is pure formatting; ``UploadProgress`` redraws it in place (``\\r``),
at most every ``interval`` seconds, and only when its stream is a terminal: piped output
and ``--json`` stay quiet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``; below 1 KiB whole bytes."""
    value = float(count)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def render_progress(done: int, total: int, elapsed_s: float, *, label: str, width: int = 24) -> str:
    """One line: ``label [#####-----]  42%  1.2 MiB / 2.9 MiB  3.1 MiB/s``."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = round(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    rate = f"{format_bytes(done / elapsed_s)}/s" if elapsed_s > 0 else "-"
    return (
        f"{label} [{bar}] {fraction * 100:3.0f}%  "
        f"{format_bytes(done)} / {format_bytes(total)}  {rate}"
    )


class UploadProgress:
    """Counts uploaded bytes (``advance``) and keeps one progress line up to date."""

    def __init__(
        self,
        total: int,
        *,
        label: str,
        stream: TextIO,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
    ) -> None:
        self.total = total
        self.done = 0
        self._label = label
        self._stream = stream
        self._enabled = stream.isatty() if enabled is None else enabled
        self._clock = clock
        self._interval = interval
        self._started = clock()
        self._drawn_at: float | None = None

    def advance(self, count: int) -> None:
        self.done += count
        now = self._clock()
        if self._drawn_at is None or now - self._drawn_at >= self._interval:
            self._draw(now)

    def finish(self) -> None:
        """Draw the final figures and end the line."""
        if self._enabled:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        if not self._enabled:
            return
        line = render_progress(self.done, self.total, now - self._started, label=self._label)
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
