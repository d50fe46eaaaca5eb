"""Counts in words: ``plural(n, word)``."""

from __future__ import annotations

import pytest

from edgectl.words import plural


@pytest.mark.parametrize(
    ("count", "word", "expected"),
    [
        (1, "device", "1 device"),
        (0, "device", "0 devices"),
        (3, "device", "3 devices"),
        (1, "batch", "1 batch"),
        (2, "batch", "2 batches"),
        (100, "request", "100 requests"),
    ],
)
def test_plural(count: int, word: str, expected: str) -> None:
    assert plural(count, word) == expected
