"""HTTP Range parsing for blob downloads."""

from __future__ import annotations

import pytest

from controlplane.errors import RangeNotSatisfiable
from controlplane.ranges import parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes=10-19", (10, 19)),
        ("bytes=10-", (10, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=-500", (0, 99)),
        ("BYTES = 1 - 2", (1, 2)),
        ("bytes=5-3", None),  # invalid: ignored, whole blob
        ("bytes=0-1,5-6", None),  # several ranges: whole blob
        ("items=0-1", None),
        ("bytes=-", None),
        ("garbage", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-1", 0)]
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.size == size and info.value.status_code == 416
