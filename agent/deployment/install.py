"""One model assignment through the lifecycle table (``agent.deployment.lifecycle``).

``Installer.run`` loops: persist the state in the journal (``enter``), run that state's
handler (its one side effect, ``steps.Steps``), post the event it returns, look the next
state up in the table. A handler that raises posts ``error``. Terminal states report the
outcome: an ``activated`` event on commit, a ``failed`` event with the reason (and what
serves now) on a permanent failure; a transient one is returned, and the manager reports
it as ``retrying`` once its retry is armed (``lifecycle.FAILURE_EVENT``).
``crash_point`` is the fault-injection hook the kill -9 tests use.

A failure is a one-line ``Failure``, ``transient`` when a retry may succeed
(``TransientDownloadError``); the staged files of a transient failure are kept so the
retry resumes the download.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from agent.deployment.book import Book
from agent.deployment.bundles import BundleCache
from agent.deployment.cache_gc import collect_garbage, prune_staging
from agent.deployment.faults import crash_point
from agent.deployment.fit import size_text
from agent.deployment.journal import PersistedModel
from agent.deployment.lifecycle import (
    REPORTED_STATUS,
    Event,
    State,
    failure_event,
    is_terminal,
    next_state,
    resume_activation,
    start_state,
)
from agent.deployment.loading import settled_status
from agent.deployment.steps import GateSettings, Reporter, Run, Steps
from agent.errors import AgentError, TransientDownloadError
from agent.selection import Selector
from agent.serving import LoadedModel, ServedModels
from protocol import DeviceStatus, EventKind, ModelAssignment

__all__ = ["Failure", "GateSettings", "Installer", "Interrupted", "Reporter"]

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    """The agent is stopping: the assignment stays where its journal says (resumed at the
    next start), nothing more is recorded or reported."""


class Failure(NamedTuple):
    """Why one assignment failed; ``transient`` failures make the generation retryable.
    ``assignment`` and ``reason``: set when this pass failed it (its event not sent yet
    if transient: the manager sends ``retrying`` once it knows when it retries)."""

    message: str
    transient: bool
    assignment: ModelAssignment | None = None
    reason: str = ""


class Installer:
    """Runs assignments; ``persist`` writes the whole state (strict: raise on failure)."""

    def __init__(
        self,
        *,
        label: str,
        cache: BundleCache,
        models: ServedModels,
        reporter: Reporter,
        book: Book,
        persist: Callable[[], None],
        set_status: Callable[[DeviceStatus], None],
        gate: GateSettings | None = None,
        cache_versions: int = 3,
        stopping: Callable[[], bool] = lambda: False,
        selector: Selector | None = None,
        memory_budget: int | None = None,
        superseded: Callable[[], bool] = lambda: False,
    ) -> None:
        """``stopping``: True once the agent stops; a step that fails then (its download
        cut off by the stop) raises ``Interrupted`` instead of failing the assignment.
        ``memory_budget``: bytes the device's models may take in all (``fit``).
        ``superseded``: True once a newer deployment command waits (a shadow period
        ends early, unjudged: the assignment fails and the newer command runs)."""
        self._label = label
        self._stopping = stopping
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self._book = book
        self._persist = persist
        self._set_status = set_status
        self._cache_versions = cache_versions
        self._steps = Steps(
            cache=cache,
            models=models,
            reporter=reporter,
            book=book,
            persist=persist,
            gate=gate or GateSettings(),
            selector=selector,
            memory_budget=memory_budget,
            stopping=stopping,
            superseded=superseded,
        )

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, a: ModelAssignment, generation: int, *, resume: State = State.IDLE
    ) -> Failure | None:
        """Run one assignment through the table (from ``resume`` after a restart)."""
        run = Run(a, generation, f"{self._label} {a.name} {a.version}")
        entry = self._book.entry(a)
        if resume in (State.FAILED, State.ROLLING_BACK):  # the failure from before a restart
            error = TransientDownloadError if entry.transient else AgentError
            run.error = error(entry.reason or "failed before the agent restarted")
        bad = self._book.bad_reason(a.bundle_digest, generation)
        if bad is not None:
            run.error = AgentError(bad)
        state = start_state(self._resume_point(a, resume), bad=bad is not None)
        if state == State.IDLE:
            self._reporter.event(EventKind.RECEIVED, a, generation)
        while not is_terminal(state):
            try:
                self._enter(a.name, state, run)
                crash_point(state)
                event = self._steps.handlers[state](run)
            except Exception as exc:
                if self._stopping() and state != State.ROLLING_BACK:
                    logger.info("%s: interrupted in %s by the agent stopping", run.label, state)
                    raise Interrupted(str(state)) from exc
                if not isinstance(exc, AgentError | OSError):
                    logger.exception("%s: unexpected failure in %s", run.label, state)
                if state == State.ROLLING_BACK and run.error is not None:
                    run.rollback_error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                run.error = run.error or exc
                event = Event.ERROR
            crash_point(state, after=True)
            state = next_state(state, event)
        self._enter(a.name, state, run)
        crash_point(state)
        return self._finish(state, run)

    def _resume_point(self, a: ModelAssignment, resume: State) -> State:
        """Where to pick up an assignment a restarted agent found in state ``resume``."""
        if resume != State.ACTIVATING:
            return resume
        serving = self._steps.serving(a.name)
        serves = serving is not None and serving.bundle_digest == a.bundle_digest
        return resume_activation(switched=self._steps.pointed(a), serves=serves)

    def _enter(self, name: str, state: State, run: Run) -> None:
        """Persist ``state`` before its side effect; show it in the reported status."""
        failed = state in (State.FAILED, State.ROLLING_BACK)
        transient = failed and isinstance(run.error, TransientDownloadError)
        self._book.set_state(name, state, run.reason if failed else None, transient=transient)
        if is_terminal(state) or state == State.ROLLING_BACK:
            try:  # the outcome must still be reported if the disk refuses the write
                self._persist()
            except OSError as exc:
                logger.error("%s: cannot persist %s: %s", run.label, state, exc)
        else:
            self._persist()
        if is_terminal(state):
            serving = len(self._models) > 0
            self._set_status(settled_status(serving=serving, failed=state == State.FAILED))
        else:
            self._set_status(REPORTED_STATUS[state])
            self._reporter.state_changed()

    def _finish(self, state: State, run: Run) -> Failure | None:
        a = run.a
        if state == State.COMMITTED:
            if run.already_active:
                logger.info("%s: already active", run.label)
            else:
                backend = run.runner.backend if run.runner is not None else "?"
                memory = run.memory_bytes
                took = f", {size_text(memory)} measured" if memory is not None else ""
                logger.info("%s: committed (%s%s)", run.label, backend, took)
                self._reporter.event(EventKind.ACTIVATED, a, run.generation)
            keep = self._book.keep()
            collect_garbage(self._cache.models_root, keep=keep, max_versions=self._cache_versions)
            prune_staging(self._cache.staging_root, keep=keep)
            return None
        transient = isinstance(run.error, TransientDownloadError)
        if not transient:
            self._cache.discard_staging(a.bundle_digest)
        reason = run.reason
        if run.rollback_error is not None:
            reason += f"; rollback failed: {run.rollback_error}"
        elif run.rolled_back_to is not None:
            back = "rolled back to" if run.switched_back else "kept"
            reason += f"; {back} {a.name} {run.rolled_back_to}"
        if transient:  # the manager reports it as retrying, with when
            logger.warning("%s: deployment failed for a transient reason: %s", run.label, reason)
        else:
            logger.warning("%s: deployment failed: %s", run.label, reason)
            self._reporter.event(failure_event(will_retry=False), a, run.generation, reason)
        return Failure(f"{a.name} {a.version}: {reason}", transient, a, reason)

    def load_committed(self, pm: PersistedModel) -> LoadedModel:
        """Load a committed version from the cache (``Steps.load_committed``)."""
        return self._steps.load_committed(pm)
