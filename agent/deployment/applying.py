"""Applying one generation: each of its assignments through the lifecycle
(``install.Installer``), then the models no longer desired unloaded, and its outcome."""

from __future__ import annotations

import logging

from agent.deployment.book import Book, Outcome
from agent.deployment.install import Failure, Installer, Interrupted
from agent.deployment.lifecycle import State
from agent.serving import ServedModels
from protocol import ModelAssignment

logger = logging.getLogger(__name__)


def apply_generation(
    *,
    label: str,
    book: Book,
    models: ServedModels,
    installer: Installer,
    generation: int,
    assignments: list[ModelAssignment],
    resume: dict[str, State] | None = None,
) -> Outcome | None:
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
    wanted = {a.name for a in assignments}
    for model in models.snapshot():
        if model.name not in wanted:
            logger.info("%s: %s is no longer desired; unloading", label, model.name)
            models.remove(model.name)
    for name in [n for n in book.pointer if n not in wanted]:
        book.retire(name)
    return Outcome(
        generation=generation,
        last_error=failures[0].message if failures else None,
        failed=bool(failures),
        retryable=any(f.transient for f in failures),
    )
