"""Applying one generation: each of its assignments through the lifecycle
(``install.Installer``), then the models it no longer names retired, and its outcome.

A model leaves the device only once its replacement is active: the models a generation
no longer names are unloaded (and their pointer retired to ``previous``) only if every
assignment of that generation committed (``may_retire``). A generation with any failed
assignment, transient or permanent, changes nothing that serves besides its own models'
rollbacks; the dropped models keep serving, stay committed (a restart serves them
again) and leave with the first later generation that succeeds. A command that names no
model at all succeeds at once: that is how the operator removes every model on purpose.
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


def may_retire(failures: list[Failure]) -> bool:
    """Whether the models a generation no longer names may leave: only when every one of
    its assignments committed (their replacement is active, or it names none)."""
    return not failures


def _retire_dropped(
    label: str,
    book: Book,
    models: ServedModels,
    assignments: list[ModelAssignment],
    failures: list[Failure],
) -> None:
    wanted = {a.name for a in assignments}
    dropped = sorted({m.name for m in models.snapshot()} | set(book.pointer))
    dropped = [name for name in dropped if name not in wanted]
    if not dropped:
        return
    if not may_retire(failures):
        logger.warning(
            "%s: %s keep%s serving until a deployment that replaces %s succeeds",
            label,
            ", ".join(dropped),
            "s" if len(dropped) == 1 else "",
            "it" if len(dropped) == 1 else "them",
        )
        return
    for name in dropped:
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
    _retire_dropped(label, book, models, assignments, failures)
    outcome = Outcome(
        generation=generation,
        last_error=failures[0].message if failures else None,
        failed=bool(failures),
        retryable=any(f.transient for f in failures),
    )
    return Applied(outcome, [f for f in failures if f.transient and f.assignment is not None])
