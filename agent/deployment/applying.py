"""Applying one generation: each of its assignments through the lifecycle
(``install.Installer``), then the models it no longer names retired, and its outcome.

A command names the device's whole set of models (one assignment per model). A model it
no longer names was undeployed by the operator: it is unloaded (and its pointer retired to
``previous``) whatever happened to the other models of the generation; a failure of one
model never holds back or undoes what happens to another. A failed assignment rolls back
only its own model: its previous version (if any) keeps serving. A command that names no
model at all removes every model.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from agent.deployment.book import Book, Outcome
from agent.deployment.install import Failure, Installer, Interrupted
from agent.deployment.lifecycle import State
from agent.serving import ServedModels
from protocol import ModelAssignment

logger = logging.getLogger(__name__)


def _retire_dropped(
    label: str, book: Book, models: ServedModels, assignments: list[ModelAssignment]
) -> None:
    wanted = {a.name for a in assignments}
    dropped = sorted({m.name for m in models.snapshot()} | set(book.pointer))
    for name in dropped:
        if name in wanted:
            continue
        logger.info("%s: %s is no longer desired; unloading", label, name)
        models.remove(name)
        if name in book.pointer:
            book.retire(name)


class Applied(NamedTuple):
    """A generation applied: its outcome, and the assignments that failed in this pass
    for a transient reason (to be reported as retrying)."""

    outcome: Outcome
    retrying: list[Failure]


def apply_generation(
    *,
    label: str,
    book: Book,
    models: ServedModels,
    installer: Installer,
    generation: int,
    assignments: list[ModelAssignment],
    resume: dict[str, State] | None = None,
) -> Applied | None:
    """Run every assignment of ``generation`` (``resume``: the interrupted ones, from
    where a restarted agent picks them up); the outcome to record, or None if the agent
    stopping interrupted it (the journal says where each assignment stands)."""
    if book.journal_generation != generation:
        book.journal_generation, book.journal = generation, {}
    for a in assignments:
        book.entry(a)
    failures: list[Failure] = []
    for a in assignments:
        if resume is not None and a.name not in resume:  # settled before the restart
            entry = book.journal[a.name]
            if entry.state == State.FAILED:
                failures.append(Failure(f"{a.name} {a.version}: {entry.reason}", entry.transient))
            continue
        start = resume.get(a.name, State.IDLE) if resume is not None else State.IDLE
        try:
            failure = installer.run(a, generation, resume=start)
        except Interrupted:
            return None
        if failure is not None:
            failures.append(failure)
    _retire_dropped(label, book, models, assignments)
    outcome = Outcome(
        generation=generation,
        last_error=failures[0].message if failures else None,
        failed=bool(failures),
        retryable=any(f.transient for f in failures),
    )
    return Applied(outcome, [f for f in failures if f.transient and f.assignment is not None])
