"""The queue between paho's network thread and the MQTT bridge's ingest worker.

Bounded in messages **and** in bytes, so a burst of large reports cannot grow the
control plane's memory without limit. ``offer`` waits at most ``wait`` seconds for room
(paho's network thread must keep the connection alive): it answers False when the item
still does not fit, and the caller drops and counts it. Control items (``size`` 0,
``force=True``: republish, stop) are always accepted; there are a handful of them.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class IngestQueue(Generic[T]):
    """FIFO of at most ``max_items`` items weighing at most ``max_bytes`` together."""

    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("an ingest queue needs room for at least one item and byte")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        lock = threading.Lock()
        self._ready = threading.Condition(lock)  # an item was added
        self._room = threading.Condition(lock)  # an item was taken

    def _fits(self, size: int) -> bool:
        return len(self._items) < self.max_items and self._bytes + size <= self.max_bytes

    def offer(self, item: T, size: int = 0, *, force: bool = False, wait: float = 0.0) -> bool:
        """Append ``item`` (weighing ``size`` bytes) unless that would pass a bound,
        waiting up to ``wait`` seconds for room; ``force`` appends regardless. False if
        the item was not taken."""
        with self._ready:
            if not (
                force or self._fits(size) or self._room.wait_for(lambda: self._fits(size), wait)
            ):
                return False
            self._items.append((item, size))
            self._bytes += size
            self._ready.notify()
            return True

    def get(self, timeout: float) -> T:
        """The oldest item, waiting up to ``timeout`` seconds; ``queue.Empty`` if none."""
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._items), timeout=timeout):
                raise queue.Empty
            item, size = self._items.popleft()
            self._bytes -= size
            self._room.notify()
            return item

    def take_while(self, wanted: Callable[[T], bool], limit: int) -> list[T]:
        """Up to ``limit`` items from the front, as long as ``wanted(item)``; never waits."""
        taken: list[T] = []
        with self._ready:
            while self._items and len(taken) < limit and wanted(self._items[0][0]):
                item, size = self._items.popleft()
                self._bytes -= size
                taken.append(item)
            self._room.notify()
        return taken

    @property
    def bytes(self) -> int:
        """The bytes the queued items weigh now."""
        with self._ready:
            return self._bytes

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)
