"""One model assignment through the lifecycle table (``agent.deployment.lifecycle``).

``Installer.run`` loops: persist the state in the journal (``enter``), run that state's
handler (its one side effect), post the event it returns, look the next state up in the
table. A handler that raises posts ``error``. Terminal states report the outcome: an
``activated`` event on commit, a ``failed`` event with the reason (and what serves now)
otherwise. ``crash_point`` is the fault-injection hook the kill -9 tests use.

A failure is a one-line ``Failure``, ``transient`` when a retry may succeed
(``TransientDownloadError``); the staged files of a transient failure are kept so the
retry resumes the download.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from agent.deployment.book import Book
from agent.deployment.bundles import BundleCache, read_metadata
from agent.deployment.cache_gc import collect_garbage, prune_staging
from agent.deployment.faults import crash_point
from agent.deployment.gate import bootstrap_inputs, health_gate
from agent.deployment.journal import PersistedModel
from agent.deployment.lifecycle import (
    REPORTED_STATUS,
    Event,
    State,
    is_terminal,
    next_state,
    resume_activation,
    start_state,
)
from agent.deployment.loading import load_runner, settled_status
from agent.errors import AgentError, TransientDownloadError
from agent.runners.base import Runner
from agent.runners.choice import candidate_runners
from agent.selection import Selector
from agent.serving import LoadedModel, ServedModels
from protocol import DeviceStatus, EventKind, ModelAssignment

logger = logging.getLogger(__name__)


class Reporter(Protocol):
    def event(
        self,
        kind: EventKind,
        assignment: ModelAssignment,
        generation: int,
        reason: str | None = None,
    ) -> None: ...

    def state_changed(self) -> None: ...


class Interrupted(Exception):
    """The agent is stopping: the assignment stays where its journal says (resumed at the
    next start), nothing more is recorded or reported."""


class Failure(NamedTuple):
    """Why one assignment failed; ``transient`` failures make the generation retryable."""

    message: str
    transient: bool


@dataclass(frozen=True)
class GateSettings:
    runs: int = 5
    max_latency_ratio: float | None = None


@dataclass
class _Run:
    """What one pass of an assignment through the table has found out so far."""

    a: ModelAssignment
    generation: int
    label: str
    staged: bool = False
    bundle_dir: Path | None = None
    runner: Runner | None = None
    gate_p50_ms: float | None = None
    selection: dict[str, Any] | None = None
    already_active: bool = False
    error: BaseException | None = None
    rolled_back_to: str | None = None
    rollback_error: str | None = None

    @property
    def reason(self) -> str:
        exc = self.error
        if exc is None:
            return "unknown failure"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and not isinstance(exc, AgentError):
            return f"{exc.strerror or text}" + (f": {exc.filename}" if exc.filename else "")
        if not isinstance(exc, AgentError):
            return f"internal error: {type(exc).__name__}: {text}"
        return text


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
    ) -> None:
        """``stopping``: True once the agent stops; a step that fails then (its download
        cut off by the stop) raises ``Interrupted`` instead of failing the assignment."""
        self._label = label
        self._stopping = stopping
        self._selector = selector
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self._book = book
        self._persist = persist
        self._set_status = set_status
        self._gate = gate or GateSettings()
        self._cache_versions = cache_versions
        self._handlers: dict[State, Callable[[_Run], Event]] = {
            State.IDLE: self._idle,
            State.DOWNLOADING: self._downloading,
            State.VERIFYING: self._verifying,
            State.STAGING: self._staging,
            State.SELECTING: self._selecting,
            State.WARMING_UP: self._warming_up,
            State.ACTIVATING: self._activating,
            State.ROLLING_BACK: self._rolling_back,
        }

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, a: ModelAssignment, generation: int, *, resume: State = State.IDLE
    ) -> Failure | None:
        """Run one assignment through the table (from ``resume`` after a restart)."""
        run = _Run(a, generation, f"{self._label} {a.name} {a.version}")
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
                event = self._handlers[state](run)
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
        serving = self._serving(a.name)
        serves = serving is not None and serving.bundle_digest == a.bundle_digest
        return resume_activation(switched=self._pointed(a), serves=serves)

    def _enter(self, name: str, state: State, run: _Run) -> None:
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

    def _finish(self, state: State, run: _Run) -> Failure | None:
        a = run.a
        if state == State.COMMITTED:
            if run.already_active:
                logger.info("%s: already active", run.label)
            else:
                backend = run.runner.backend if run.runner is not None else "?"
                logger.info("%s: committed (%s)", run.label, backend)
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
            reason += f"; rolled back to {a.name} {run.rolled_back_to}"
        logger.warning("%s: deployment failed: %s", run.label, reason)
        self._reporter.event(EventKind.FAILED, a, run.generation, reason)
        return Failure(f"{a.name} {a.version}: {reason}", transient)

    def _pointed(self, a: ModelAssignment) -> bool:
        """Whether the active pointer names exactly what ``a`` installs (bundle and pin)."""
        pointed = self._book.pointer.get(a.name)
        return (
            pointed is not None
            and pointed.bundle_digest == a.bundle_digest
            and pointed.pin == a.backend
        )

    def _serving(self, name: str) -> LoadedModel | None:
        try:
            return self._models.get(name)
        except AgentError:
            return None

    # -- one handler per state: its side effect, then the event it posts -----------------

    def _idle(self, run: _Run) -> Event:
        a = run.a
        current = self._serving(a.name)
        if current is not None and current.bundle_digest == a.bundle_digest:
            try:
                self._cache.check_still_trusted(a.bundle_digest)
            except AgentError:  # e.g. its release key was revoked: stop serving it
                self._models.remove(a.name)
                self._book.pointer.pop(a.name, None)
                raise
            current.deployment_id = a.deployment_id
            if self._pointed(a):
                run.already_active = True
                return Event.ALREADY_ACTIVE
            logger.info("%s: the backend pin changed to %s: selecting again", run.label, a.backend)
            run.bundle_dir = current.bundle_dir  # verified when it was installed or restored
            return Event.CACHED
        # a cached copy is re-verified here (read only); an invalid one is removed and the
        # bundle downloaded again
        run.bundle_dir = self._cache.cached(a.bundle_digest)
        return Event.CACHED if run.bundle_dir is not None else Event.START

    def _downloading(self, run: _Run) -> Event:
        self._cache.download(run.a)
        run.staged = True
        self._reporter.event(EventKind.DOWNLOADED, run.a, run.generation)
        return Event.DONE

    def _verifying(self, run: _Run) -> Event:
        digest = run.a.bundle_digest
        if run.staged:
            self._cache.verify_staged(digest)
        else:  # the cached copy: verified in idle, against the current trust
            assert run.bundle_dir is not None
            self._cache.check_constraints(read_metadata(run.bundle_dir))
            self._reporter.event(EventKind.DOWNLOADED, run.a, run.generation)
        self._reporter.event(EventKind.VERIFIED, run.a, run.generation)
        return Event.DONE

    def _staging(self, run: _Run) -> Event:
        if run.staged:
            run.bundle_dir = self._cache.install_staged(run.a.bundle_digest)
        return Event.DONE

    def _selecting(self, run: _Run) -> Event:
        assert run.bundle_dir is not None
        a = run.a
        run.runner, run.selection = self._load_selected(
            run.bundle_dir, a.name, a.version, a.bundle_digest, pin=a.backend
        )
        return Event.DONE

    def _load_selected(
        self, bundle_dir: Path, name: str, version: str, digest: str, *, pin: str | None
    ) -> tuple[Runner, dict[str, Any] | None]:
        """The bundle loaded on its measured (or pinned) backend, and how it was chosen.

        The pin: the deployment's (the control plane's device or fleet pin), else the
        bundle's own (``edgefleet.json`` ``selection.pin``, signed by the operator)."""

        def load(spec: Any = None) -> Runner:
            return load_runner(bundle_dir, expected_name=name, expected_version=version, spec=spec)

        metadata = read_metadata(bundle_dir)
        bundle = metadata.selection
        pin = pin or (bundle.pin if bundle is not None else None)
        runtimes = candidate_runners(metadata)
        if self._selector is None or (pin is None and not self._selector.candidates_for(runtimes)):
            return load(), None
        selection = self._selector.select(
            bundle_digest=digest,
            runtimes=runtimes,
            load=load,
            inputs_for=lambda runner: bootstrap_inputs(runner, bundle_dir),
            pin=pin,
            tolerance=bundle.tolerance if bundle is not None else None,
        )
        summary = selection.summary()
        summary["pinned"] = pin is not None
        return selection.runner, summary

    def _warming_up(self, run: _Run) -> Event:
        assert run.runner is not None and run.bundle_dir is not None
        previous = self._book.pointer.get(run.a.name)
        run.gate_p50_ms = health_gate(
            run.runner,
            run.bundle_dir,
            runs=self._gate.runs,
            baseline_p50_ms=previous.gate_p50_ms if previous is not None else None,
            max_latency_ratio=self._gate.max_latency_ratio,
        )
        return Event.DONE

    def _activating(self, run: _Run) -> Event:
        a, runner = run.a, run.runner
        assert runner is not None and run.bundle_dir is not None
        self._book.switch(
            PersistedModel(
                name=a.name,
                version=a.version,
                bundle_digest=a.bundle_digest,
                backend=runner.backend,
                deployment_id=a.deployment_id,
                gate_p50_ms=run.gate_p50_ms,
                pin=a.backend,
            )
        )
        self._persist()  # the pointer switch, before the served model changes
        self._models.activate(
            LoadedModel(
                a.name,
                a.version,
                a.bundle_digest,
                run.bundle_dir,
                runner,
                a.deployment_id,
                selection=run.selection,
            )
        )
        return Event.DONE

    def _rolling_back(self, run: _Run) -> Event:
        """Make the previous version the active one again: pointer, then served model."""
        a = run.a
        switched = self._pointed(a)  # the pointer names what this assignment installs
        previous = None
        if switched:
            previous = self._book.revert(a.name)
            self._persist()
        serving = self._serving(a.name)
        if switched and serving is not None and serving.bundle_digest == a.bundle_digest:
            if previous is None:
                self._models.remove(a.name)
            else:
                self._models.activate(self.load_committed(previous))
        elif run.runner is not None:
            run.runner.close()
        run.runner = None
        restored = self._serving(a.name)
        run.rolled_back_to = restored.version if restored is not None else None
        return Event.DONE

    def load_committed(self, pm: PersistedModel) -> LoadedModel:
        """Load a committed version from the cache: re-verified, loaded on its selected
        backend (the selection cache answers: no new measurement), gated (no ratio)."""
        bundle_dir = self._cache.verify_installed(pm.bundle_digest)
        runner, selection = self._load_selected(
            bundle_dir, pm.name, pm.version, pm.bundle_digest, pin=pm.pin
        )
        try:
            health_gate(runner, bundle_dir, runs=1)
        except AgentError:
            runner.close()
            raise
        return LoadedModel(
            pm.name,
            pm.version,
            pm.bundle_digest,
            bundle_dir,
            runner,
            pm.deployment_id,
            selection=selection,
        )
