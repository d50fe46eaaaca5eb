"""Plain-text tables and times for humans (``--json`` gives scripts the raw data)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line.rstrip(), *(b.rstrip() for b in body)])


def when(stamp: object, *, clock: bool = False) -> str:
    """An API timestamp in local time: ``2025-05-01 14:00:03`` (``clock``: ``14:00:03``);
    ``-`` for none, the text itself if it is not a timestamp."""
    if stamp is None or stamp == "":
        return "-"
    try:
        local = datetime.fromisoformat(str(stamp)).astimezone()
    except ValueError:
        return str(stamp)
    return local.strftime("%H:%M:%S" if clock else "%Y-%m-%d %H:%M:%S")
