"""What a light simulated device keeps on disk (``light-state.json`` in its data directory).

The accepted generation and its payload digest (so a restarted simulator still refuses
replays: written before the device acts on a command, as a real agent does), the outcome
of the last generation processed, the active models, and the bundles the device holds:
the last ``HELD_BUNDLES`` it installed, as a real agent keeps its previous versions for an
instant rollback (activating one of those downloads nothing). Written atomically (temp
file, fsync, rename); an unreadable file is logged and the device starts afresh.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from agent.deployment.book import Accepted, Book, Outcome
from agent.fsutil import write_atomically
from protocol import ActiveModel

logger = logging.getLogger(__name__)

STATE_FILE = "light-state.json"
#: Bundles a device holds (a real agent's ``cache_versions`` default).
HELD_BUNDLES = 3


@dataclass
class LightState:
    book: Book = field(default_factory=Book)
    active: dict[str, ActiveModel] = field(default_factory=dict)
    #: bundle digests the device holds, oldest first
    held: list[str] = field(default_factory=list)

    def holds(self, digest: str) -> bool:
        return digest in self.held

    def hold(self, digest: str) -> None:
        """The device installed ``digest`` (the oldest beyond ``HELD_BUNDLES`` is let go,
        unless active)."""
        if digest in self.held:
            self.held.remove(digest)
        self.held.append(digest)
        active = {m.bundle_digest for m in self.active.values()}
        while len(self.held) > HELD_BUNDLES:
            old = next((d for d in self.held if d not in active and d != digest), None)
            if old is None:
                break
            self.held.remove(old)

    def save(self, data_dir: Path) -> None:
        book = self.book
        state = {
            "accepted": {"generation": book.accepted.generation, "digest": book.accepted.digest},
            "outcome": {
                "generation": book.outcome.generation,
                "last_error": book.outcome.last_error,
                "failed": book.outcome.failed,
                "retryable": book.outcome.retryable,
            },
            "active": [m.model_dump(mode="json") for m in self.active.values()],
            "held": self.held,
        }
        write_atomically(data_dir / STATE_FILE, json.dumps(state).encode())

    @classmethod
    def load(cls, data_dir: Path, label: str) -> LightState:
        path = data_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text()) if path.exists() else None
            if not raw:
                return cls()
            accepted, outcome = raw["accepted"], raw["outcome"]
            book = Book()
            book.accepted = Accepted(accepted["generation"], accepted["digest"])
            book.outcome = Outcome(**outcome)
            active = {m["name"]: ActiveModel.model_validate(m) for m in raw["active"]}
            return cls(book, active, list(raw.get("held", [])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: %s unreadable, starting afresh: %s", label, path, exc)
            return cls()
