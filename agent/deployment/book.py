"""The in-memory copy of what ``state.json`` records (see ``journal``), and the one
conversion to and from that file (``Book.to_state`` / ``Book.from_state``).

The deployment worker is the only writer; every change is followed by the manager's
``persist`` (one atomic write of the whole state). A new ``Outcome`` is written before it
is shown: ``to_state`` takes the outcome to save, the caller then sets ``outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from agent.deployment.journal import AssignmentJournal, BadBundle, PersistedModel, PersistedState
from agent.deployment.lifecycle import State
from protocol import ModelAssignment


@dataclass(frozen=True)
class Outcome:
    """What the last processed generation came to (reported and persisted)."""

    generation: int = -1
    last_error: str | None = None
    failed: bool = False
    #: whether ``generation`` is to be applied again (it failed for a transient reason)
    retryable: bool = False


@dataclass(frozen=True)
class Accepted:
    """The highest accepted deployment command: its generation and payload's sha256."""

    generation: int = -1
    digest: str | None = None


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
    accepted: Accepted = field(default_factory=Accepted)
    outcome: Outcome = field(default_factory=Outcome)

    # -- state.json ------------------------------------------------------------------------

    def to_state(self, *, stopped_cleanly: bool, outcome: Outcome | None = None) -> PersistedState:
        """What ``state.json`` is to hold: this book, with ``outcome`` (a new one, saved
        before it is shown) instead of the current one if given."""
        o = outcome if outcome is not None else self.outcome
        return PersistedState(
            accepted_generation=self.accepted.generation,
            accepted_digest=self.accepted.digest,
            models=sorted(self.pointer.values(), key=lambda m: m.name),
            previous=sorted(self.previous.values(), key=lambda m: m.name),
            journal_generation=self.journal_generation,
            journal=[self.journal[name] for name in sorted(self.journal)],
            bad=sorted(self.bad.values(), key=lambda b: b.bundle_digest),
            stopped_cleanly=stopped_cleanly,
            restoring=dict(self.restoring),
            generation=o.generation,
            last_error=o.last_error,
            failed=o.failed,
            retryable=o.retryable,
        )

    @classmethod
    def from_state(cls, state: PersistedState) -> Book:
        """The book ``state.json`` recorded (``stopped_cleanly`` is the restart's to read)."""
        return cls(
            pointer={m.name: m for m in state.models},
            previous={m.name: m for m in state.previous},
            journal_generation=state.journal_generation,
            journal={e.assignment.name: e for e in state.journal},
            bad={b.bundle_digest: b for b in state.bad},
            restoring=dict(state.restoring),
            accepted=Accepted(state.accepted_generation, state.accepted_digest),
            outcome=Outcome(state.generation, state.last_error, state.failed, state.retryable),
        )

    def take(self, other: Book) -> None:
        """Become ``other`` (in place: the installer holds this book)."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))

    # -- the journal -----------------------------------------------------------------------

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

    def mark_bad(self, digest: str, generation: int, reason: str) -> None:
        """Give up on ``digest`` on this device until a generation newer than ``generation``."""
        self.bad[digest] = BadBundle(bundle_digest=digest, generation=generation, reason=reason)

    # -- the active pointer ----------------------------------------------------------------

    def switch(self, model: PersistedModel) -> None:
        """Point ``model.name`` at ``model``; the version it replaces becomes ``previous``."""
        current = self.pointer.get(model.name)
        if current is not None and current.bundle_digest != model.bundle_digest:
            self.previous[model.name] = current
        self.pointer[model.name] = model

    def revert(self, name: str) -> PersistedModel | None:
        """Point ``name`` back at its previous version (which is no longer ``previous``), or
        at nothing if it had none; that version."""
        previous = self.previous.pop(name, None)
        if previous is not None:
            self.pointer[name] = previous
        else:
            self.pointer.pop(name, None)
        return previous

    def retire(self, name: str) -> None:
        """``name`` is no longer desired: its committed version becomes ``previous``."""
        self.previous[name] = self.pointer.pop(name)

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
