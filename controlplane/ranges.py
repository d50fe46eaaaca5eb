"""HTTP byte ranges (RFC 9110 §14) for blob downloads: one range per request.

``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` are served as 206; a syntactically valid
range that lies outside the blob is 416. A header this server does not understand
(another unit, several ranges, garbage) is ignored and the whole blob is sent (200),
which RFC 9110 allows and every resuming downloader copes with.
"""

from __future__ import annotations

import re

from controlplane.errors import RangeNotSatisfiable

_SINGLE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions to send, or None for the whole blob."""
    if header is None:
        return None
    match = _SINGLE.match(header)
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix: the last n bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header!r} selects no byte", size=size)
        return max(size - suffix, 0), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid per RFC 9110: ignore the header
    if first >= size:
        raise RangeNotSatisfiable(
            f"range {header!r} starts beyond the end of the {size}-byte blob", size=size
        )
    return first, min(last, size - 1)
