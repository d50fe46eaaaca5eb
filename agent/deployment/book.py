"""The in-memory copy of what ``state.json`` records about models (see ``journal``).

The deployment worker is the only writer; every change is followed by the manager's
``persist`` (one atomic write of the whole state).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.deployment.journal import AssignmentJournal, BadBundle, PersistedModel
from agent.deployment.lifecycle import State
from protocol import ModelAssignment


@dataclass
class Book:
    #: the active pointer: the committed version of each model name
    pointer: dict[str, PersistedModel] = field(default_factory=dict)
    #: the version each name ran before its current one (kept in the cache for rollback)
    previous: dict[str, PersistedModel] = field(default_factory=dict)
    journal_generation: int = -1
    journal: dict[str, AssignmentJournal] = field(default_factory=dict)
    bad: dict[str, BadBundle] = field(default_factory=dict)
    #: bundle digest -> starts in a row that began loading it (cleared once loaded)
    restoring: dict[str, int] = field(default_factory=dict)

    def entry(self, a: ModelAssignment) -> AssignmentJournal:
        """The journal entry of ``a`` in the generation in progress (a fresh one if none)."""
        current = self.journal.get(a.name)
        if current is None or current.assignment.bundle_digest != a.bundle_digest:
            current = AssignmentJournal(assignment=a)
            self.journal[a.name] = current
        return current

    def set_state(
        self, name: str, state: State, reason: str | None = None, *, transient: bool = False
    ) -> None:
        entry = self.journal[name]
        update = {"state": state, "reason": reason, "transient": transient}
        self.journal[name] = entry.model_copy(update=update)

    def bad_reason(self, digest: str, generation: int) -> str | None:
        """Why ``digest`` may not be tried in ``generation``, or None if it may."""
        bad = self.bad.get(digest)
        if bad is None or generation > bad.generation:
            return None
        return f"marked bad on this device in generation {bad.generation}: {bad.reason}"

    def switch(self, model: PersistedModel) -> None:
        """Point ``model.name`` at ``model``; the version it replaces becomes ``previous``."""
        current = self.pointer.get(model.name)
        if current is not None and current.bundle_digest != model.bundle_digest:
            self.previous[model.name] = current
        self.pointer[model.name] = model

    def keep(self) -> set[str]:
        """Bundle digests the cache must keep: active, previous and in-flight versions (a
        transient failure is in flight too: its retry resumes from the staged files)."""
        digests = {m.bundle_digest for m in (*self.pointer.values(), *self.previous.values())}
        digests.update(
            e.assignment.bundle_digest
            for e in self.journal.values()
            if e.state != State.FAILED or e.transient
        )
        return digests
