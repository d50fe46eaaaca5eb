"""Words for counts in what edgectl prints: ``plural(1, "device")`` -> ``1 device``."""

from __future__ import annotations

#: Plurals that are not the word + "s".
_IRREGULAR = {"batch": "batches", "entry": "entries", "is": "are", "has": "have"}


def plural(count: int, word: str) -> str:
    """``"1 device"``, ``"3 devices"``, ``"0 batches"``."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {_IRREGULAR.get(word, word + 's')}"
