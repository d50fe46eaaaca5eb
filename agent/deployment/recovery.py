"""Recovery after a restart: the committed models served again, and the deployment the
agent was interrupted in lined up to resume (where, ``lifecycle.resume_after_restart``).

An assignment found in flight counts one more crash (unless the last process stopped
cleanly); at ``max_crashes`` the agent gives up on it (``lifecycle.give_up``): its bundle
is marked bad for this generation and the pointer goes back to the previous version
*before* anything is loaded (a model that kills the agent while loading must not kill
every restart). Likewise a committed version that the agent died loading at start
``max_crashes`` times in a row.

A committed version that does not restore (its bytes on disk fail verification, or it
does not load) is replaced, in what serves, by the previous version if that one verifies
and loads: a device with a verified model on disk serves one. The pointer still names
the committed version, and the processed generation is forgotten, so the retained
command is applied again: it re-downloads and verifies the committed version (the
repair, retried with backoff while the control plane cannot be reached) and switches
back to it. The outcome of the persisted generation (``last_error``,
failed, retryable) is reported again until a later one succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agent.deployment.book import Book
from agent.deployment.faults import crash_point
from agent.deployment.journal import PersistedModel, PersistedState
from agent.deployment.lifecycle import State, give_up, is_terminal, resume_after_restart
from agent.errors import AgentError
from agent.serving import LoadedModel, ServedModels

logger = logging.getLogger(__name__)


@dataclass
class Recovery:
    label: str
    book: Book
    models: ServedModels
    #: load a committed version from the cache (re-verified)
    load: Callable[[PersistedModel], LoadedModel]
    persist: Callable[[], None]
    max_crashes: int
    #: model name -> why its previous version serves instead of the committed one (set
    #: at restore; the manager reports it until the committed version serves again)
    fallbacks: dict[str, str] = field(default_factory=dict)
    #: the order the committed models are restored in (pipelines after their steps)
    order: Callable[[list[PersistedModel]], list[PersistedModel]] = list

    def restore(self, state: PersistedState) -> dict[str, State]:
        """Take over ``state``, serve its committed models again; the interrupted
        assignments by name, each with where it resumes (empty: none)."""
        book = self.book
        book.take(Book.from_state(state))
        crashed = not state.stopped_cleanly
        resume = self._count_crashes(crashed=crashed)
        failures = self._guard_boot_loop(state.restoring if crashed else {})
        for pm in self.order(list(book.pointer.values())):
            crash_point(f"restoring-{pm.version}")
            try:
                self.models.activate(self.load(pm))
            except AgentError as exc:
                failures.append(self._fall_back(pm, exc))
                continue
            logger.info("%s: restored %s %s", self.label, pm.name, pm.version)
        book.restoring = {}
        self.persist()
        if failures and not resume:
            # forget the processed generation so the retained command is applied again
            book.outcome = replace(book.outcome, generation=-1, last_error=failures[0], failed=True)
        return resume

    def fallback_notes(self) -> list[str]:
        """Why a previous version serves instead of the committed one, for each model it
        still does so for (one repaired, or no longer committed, is forgotten)."""
        if not self.fallbacks:
            return []
        served = {m.name: m.bundle_digest for m in self.models.snapshot()}
        for name in list(self.fallbacks):
            committed = self.book.pointer.get(name)
            if committed is None or served.get(name) == committed.bundle_digest:
                self.fallbacks.pop(name, None)
        return list(self.fallbacks.values())

    def _fall_back(self, pm: PersistedModel, exc: AgentError) -> str:
        """The committed version ``pm`` did not restore (its bytes fail verification, or
        it does not load): serve its previous version instead, if that one verifies and
        loads (never unverified bytes). The pointer keeps naming ``pm``: the generation is
        applied again, which re-downloads and verifies it (the repair) and switches back.
        Why, in one line (also kept in ``fallbacks`` while the previous version serves)."""
        why = f"{pm.name} {pm.version}: restore failed: {exc}"
        previous = self.book.previous.get(pm.name)
        if previous is not None:
            crash_point(f"restoring-{previous.version}")
            try:
                self.models.activate(self.load(previous))
            except AgentError as again:
                why += f"; the previous version {previous.version} did not restore either: {again}"
            else:
                why += (
                    f"; serving the previous verified version {previous.version} until "
                    f"{pm.version} is repaired"
                )
                self.fallbacks[pm.name] = why
        logger.warning("%s: %s", self.label, why)
        return why

    def _guard_boot_loop(self, restoring: dict[str, int]) -> list[str]:
        """A committed version the agent died loading at ``max_crashes`` starts in a row is
        marked bad and the pointer goes back to the previous version; then the starts in a
        row are counted (persisted) before anything is loaded. Why versions were dropped."""
        book, failures = self.book, []
        for name, pm in list(book.pointer.items()):
            starts = restoring.get(pm.bundle_digest, 0)
            if not give_up(starts, self.max_crashes):
                continue
            reason = f"the agent died {starts} times in a row while loading it at start"
            book.mark_bad(pm.bundle_digest, book.accepted.generation, reason)
            previous = book.revert(name)
            back = f"; back to {previous.version}" if previous is not None else ""
            failures.append(f"{pm.name} {pm.version}: {reason}{back}")
            logger.error("%s: %s", self.label, failures[-1])
        book.restoring = {
            pm.bundle_digest: restoring.get(pm.bundle_digest, 0) + 1 for pm in book.pointer.values()
        }
        if book.restoring:
            self.persist()  # before loading: a start that dies while loading is counted
        return failures

    def _count_crashes(self, *, crashed: bool) -> dict[str, State]:
        """Count a crash (unless the agent ``crashed`` not: it was stopped cleanly) for
        every assignment left in flight, give up on those at the limit; where each
        assignment to pick up resumes."""
        book = self.book
        resume: dict[str, State] = {}
        unfinished = book.journal_generation > book.outcome.generation
        for name, entry in list(book.journal.items()):
            crashes = entry.crashes
            if not is_terminal(entry.state):
                crashes += 1 if crashed else 0
                book.journal[name] = entry.model_copy(update={"crashes": crashes})
                a = entry.assignment
                logger.warning(
                    "%s: %s %s was left in %s by a %s; resuming (crashes so far: %d)",
                    self.label,
                    a.name,
                    a.version,
                    entry.state,
                    "crash" if crashed else "clean stop",
                    crashes,
                )
                if give_up(crashes, self.max_crashes):
                    self._give_up(name, crashes, entry.state)
            start = resume_after_restart(
                entry.state, crashes=crashes, max_crashes=self.max_crashes, unfinished=unfinished
            )
            if start is not None:
                resume[name] = start
        if resume:
            self.persist()  # before loading anything
        return resume

    def _give_up(self, name: str, crashes: int, state: State) -> None:
        """The side effect of the ``give_up`` row: the bundle marked bad for the journal's
        generation; the pointer back to the previous version if it names that bundle."""
        book = self.book
        a = book.journal[name].assignment
        reason = f"the agent died {crashes} times while deploying it (last in {state})"
        book.mark_bad(a.bundle_digest, book.journal_generation, reason)
        pointed = book.pointer.get(name)
        if pointed is not None and pointed.bundle_digest == a.bundle_digest:
            book.revert(name)
