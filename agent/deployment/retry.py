"""Capped exponential backoff for retrying a generation that failed transiently.

``Backoff(2, 60)`` hands out 2, 4, 8, 16, 32, 60, 60, ... seconds; ``reset`` starts again
from the first delay (after a success, or for a new generation).
"""

from __future__ import annotations


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self._next = initial_s

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the following one."""
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s
