"""Persisting the book: ``state.json`` written whole, and a new outcome saved before it is
shown (whoever reads ``last_error``/``failed``/``retryable`` finds the same on disk)."""

from __future__ import annotations

import logging
from pathlib import Path

from agent.deployment.book import Book, Outcome
from agent.deployment.journal import save_state

logger = logging.getLogger(__name__)


class Recorder:
    """Writes ``book`` to ``data_dir/state.json`` (``save_state``: atomically)."""

    def __init__(self, label: str, data_dir: Path, book: Book) -> None:
        self._label = label
        self._data_dir = data_dir
        self.book = book
        #: set when the agent begins stopping (SIGTERM): what is in flight then is no crash
        self.stopped_cleanly = False

    def persist(self, *, strict: bool = False, outcome: Outcome | None = None) -> None:
        """Save the state (with ``outcome`` instead of the shown one, if given); a failed
        write is logged, and raised too if ``strict``."""
        state = self.book.to_state(stopped_cleanly=self.stopped_cleanly, outcome=outcome)
        try:
            save_state(self._data_dir, state)
        except OSError as exc:
            logger.error("%s: cannot persist state: %s", self._label, exc)
            if strict:
                raise

    def persist_strict(self) -> None:
        self.persist(strict=True)

    def settle(self, outcome: Outcome) -> None:
        """Save ``outcome``, then show it (even if the disk refused the write: logged)."""
        self.persist(outcome=outcome)
        self.book.outcome = outcome
