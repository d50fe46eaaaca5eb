"""The generation rules that admit a verified deployment command (or refuse it).

A lower generation, or the same one with another payload, is refused; the same one again
is a no-op unless its outcome is retryable (interrupted or failed transiently); an expired
one is refused. A newly accepted generation and its payload digest are persisted *before*
the agent acts on it, so a replayed older or altered command is refused after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from agent.deployment.book import Accepted, Book
from agent.deployment.commands import Command, check_fresh
from agent.errors import CommandRefused

logger = logging.getLogger(__name__)


def admit(
    command: Command, book: Book, *, now: datetime, persist: Callable[[], None], label: str
) -> bool:
    """True to act on ``command``; CommandRefused if the rules refuse it. A new acceptance
    is recorded in ``book`` and persisted (``persist``, strict: an OSError undoes it)."""
    generation, accepted = command.generation, book.accepted.generation
    if generation < accepted:
        raise CommandRefused(f"generation {generation} is lower than the accepted {accepted}")
    if generation == accepted:
        if command.digest != book.accepted.digest:
            raise CommandRefused(
                f"generation {generation} was already accepted with different content"
            )
        if book.outcome.generation >= generation and not book.outcome.retryable:
            logger.debug("%s: generation %s already processed", label, generation)
            return False
        check_fresh(command, now)
        return True
    check_fresh(command, now)
    previous = book.accepted
    book.accepted = Accepted(generation, command.digest)
    try:
        persist()  # before acting: survives a crash or restart
    except OSError:
        book.accepted = previous
        raise
    return True
