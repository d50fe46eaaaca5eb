"""What each lifecycle state does (``agent.deployment.lifecycle``): its one side effect,
and the event it posts. ``Installer`` (``install``) drives them through the table.

- ``idle``: already served (same bundle and pin), cached (re-verified, read only), or to
  be downloaded;
- ``downloading`` / ``verifying`` / ``staging``: the bundle fetched, verified, installed
  into the content-addressed cache; its declared memory checked against the budget
  (``fit``) before any model file is fetched (or, when cached, before it is loaded);
- ``selecting``: loaded on its measured (or pinned) backend (a pipeline: over the
  models served, ``agent.serving.pipeline``); a measurement runs in a child process
  (``selecting``), so only the winner's runtime is loaded here; ``warming_up``: the
  gate, then the memory it took (``memory``) checked against the budget;
- ``shadowing``: with a shadow period asked for and another version serving, the new
  one runs as its shadow (``agent.serving.shadow``) for the period, loaded again at the
  lowest priority, then is judged; one that passed is loaded again to serve;
- ``activating``: the persisted pointer switched, then the served model;
- ``rolling_back``: the previous version made the active one again (``Book.revert``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.deployment.book import Book
from agent.deployment.bundles import BundleCache, read_metadata
from agent.deployment.fit import memory_problem
from agent.deployment.gate import bundle_input_sets, health_gate
from agent.deployment.journal import PersistedModel
from agent.deployment.lifecycle import Event, State
from agent.deployment.loading import load_runner
from agent.deployment.memory import grown_since, held, process_rss
from agent.deployment.selecting import Request, select_backend
from agent.deployment.shadowing import ShadowPeriod
from agent.errors import AgentError, DoesNotFit, KeeperUnavailable
from agent.runners.base import Runner
from agent.runners.choice import candidate_runners
from agent.runners.spec import CandidateSpec
from agent.selection import Selector
from agent.serving import LoadedModel, ServedModels
from agent.serving.fairshare import Share, Want, want_for
from agent.serving.pipeline import is_pipeline, load_pipeline
from agent.serving.placement import confined
from agent.serving.priority import at_idle_priority
from model_store import BundleMetadata
from protocol import EventKind, ModelAssignment

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


@dataclass(frozen=True)
class GateSettings:
    runs: int = 5
    max_latency_ratio: float | None = None


@dataclass
class Run:
    """What one pass of an assignment through the table has found out so far."""

    a: ModelAssignment
    generation: int
    label: str
    staged: bool = False
    bundle_dir: Path | None = None
    runner: Runner | None = None
    gate_p50_ms: float | None = None
    selection: dict[str, Any] | None = None
    fair: tuple[Want, Share | None] | None = None
    already_active: bool = False
    error: BaseException | None = None
    #: the version serving after a failure: switched back to (``switched_back``), or
    #: kept (the failure came before the switch: the gate, the shadow period)
    rolled_back_to: str | None = None
    switched_back: bool = False
    rollback_error: str | None = None
    #: the process's resident memory before loading, and what loading + warm-up added
    rss_before: int | None = None
    memory_bytes: int | None = None

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


class Steps:
    """The state handlers; ``persist`` writes the whole state (strict: raise on failure)."""

    def __init__(
        self,
        *,
        cache: BundleCache,
        models: ServedModels,
        reporter: Reporter,
        book: Book,
        persist: Callable[[], None],
        gate: GateSettings,
        selector: Selector | None,
        memory_budget: int | None = None,
        stopping: Callable[[], bool] = lambda: False,
        superseded: Callable[[], bool] = lambda: False,
    ) -> None:
        """``memory_budget``: bytes the device's models may take in all (None: none);
        ``stopping``: True once the agent stops, ``superseded``: once a newer deployment
        command waits (either ends a shadow period early, unjudged)."""
        self._memory_budget = memory_budget
        self._stopping = stopping
        self._superseded = superseded
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self._book = book
        self._persist = persist
        self._gate = gate
        self._selector = selector
        #: the handler of each state in flight
        self.handlers: dict[State, Callable[[Run], Event]] = {
            State.IDLE: self._idle,
            State.DOWNLOADING: self._downloading,
            State.VERIFYING: self._verifying,
            State.STAGING: self._staging,
            State.SELECTING: self._selecting,
            State.WARMING_UP: self._warming_up,
            State.SHADOWING: self._shadowing,
            State.ACTIVATING: self._activating,
            State.ROLLING_BACK: self._rolling_back,
        }

    def pointed(self, a: ModelAssignment) -> bool:
        """Whether the active pointer names exactly what ``a`` installs (bundle and pin),
        selected under the operator's latest re-selection counter."""
        pointed = self._book.pointer.get(a.name)
        return (
            pointed is not None
            and pointed.bundle_digest == a.bundle_digest
            and pointed.pin == a.backend
            and pointed.reselect >= a.reselect
        )

    def _reselect_asked(self, a: ModelAssignment) -> bool:
        """Whether the operator asked to measure ``a``'s backend again since it was chosen."""
        pointed = self._book.pointer.get(a.name)
        return pointed is not None and a.reselect > pointed.reselect

    def serving(self, name: str) -> LoadedModel | None:
        try:
            return self._models.get(name)
        except AgentError:
            return None

    # -- one handler per state: its side effect, then the event it posts -----------------

    def _idle(self, run: Run) -> Event:
        a = run.a
        current = self.serving(a.name)
        if current is not None and current.bundle_digest == a.bundle_digest:
            try:
                self._cache.check_still_trusted(a.bundle_digest)
            except KeeperUnavailable:  # not checked (agent.keeper): it keeps serving
                raise
            except AgentError:  # e.g. its release key was revoked: stop serving it
                self._models.remove(a.name)
                self._book.pointer.pop(a.name, None)
                raise
            current.deployment_id = a.deployment_id
            if self.pointed(a):
                run.already_active = True
                return Event.ALREADY_ACTIVE
            if self._reselect_asked(a):
                logger.info("%s: re-selection asked by the operator", run.label)
            else:
                logger.info(
                    "%s: the backend pin changed to %s: selecting again", run.label, a.backend
                )
            run.bundle_dir = current.bundle_dir  # verified when it was installed or restored
            return Event.CACHED
        # a cached copy is re-verified here (read only); an invalid one is removed and the
        # bundle downloaded again
        run.bundle_dir = self._cache.cached(a.bundle_digest)
        return Event.CACHED if run.bundle_dir is not None else Event.START

    def _downloading(self, run: Run) -> Event:
        self._cache.download(run.a, fits=lambda metadata: self._fits_declared(run, metadata))
        run.staged = True
        self._reporter.event(EventKind.DOWNLOADED, run.a, run.generation)
        return Event.DONE

    def _verifying(self, run: Run) -> Event:
        digest = run.a.bundle_digest
        if run.staged:
            self._cache.verify_staged(digest)
        else:  # the cached copy: verified in idle, against the current trust
            assert run.bundle_dir is not None
            metadata = read_metadata(run.bundle_dir)
            self._cache.check_constraints(metadata)
            self._fits_declared(run, metadata)
            self._reporter.event(EventKind.DOWNLOADED, run.a, run.generation)
        self._reporter.event(EventKind.VERIFIED, run.a, run.generation)
        return Event.DONE

    def _staging(self, run: Run) -> Event:
        if run.staged:
            run.bundle_dir = self._cache.install_staged(run.a.bundle_digest)
        return Event.DONE

    def _selecting(self, run: Run) -> Event:
        assert run.bundle_dir is not None
        a = run.a
        if self._selector is not None and self._reselect_asked(a):
            dropped = self._selector.forget(a.bundle_digest)  # measure, not the cache
            logger.info("%s: %d cached selection(s) dropped", run.label, dropped)
        run.rss_before = process_rss()
        run.runner, run.selection, run.fair = self._load_selected(
            run.bundle_dir, a.name, a.version, a.bundle_digest, pin=a.backend, priority=a.priority
        )
        return Event.DONE

    def _load_selected(
        self,
        bundle_dir: Path,
        name: str,
        version: str,
        digest: str,
        *,
        pin: str | None,
        priority: Any = None,
    ) -> tuple[Runner, dict[str, Any] | None, tuple[Want, Share | None] | None]:
        """The bundle loaded on its measured (or pinned) backend, how it was chosen, and
        its fair share (``agent.serving.fairshare``: measured and loaded with its threads).

        The pin: the deployment's (the control plane's device or fleet pin), else the
        bundle's own (``edgefleet.json`` ``selection.pin``, signed by the operator)."""

        def load(spec: Any = None) -> Runner:
            return load_runner(bundle_dir, expected_name=name, expected_version=version, spec=spec)

        metadata = read_metadata(bundle_dir)
        if is_pipeline(metadata):  # its steps are served models: no backend, no threads
            return load_pipeline(bundle_dir, metadata, self._models), None, None
        want = want_for(metadata.serving, priority)
        share = self._models.share_for(name, want)
        fair = (want, share)
        bundle = metadata.selection
        pin = pin or (bundle.pin if bundle is not None else None)
        runtimes = candidate_runners(metadata)
        # loaded and measured on its share's cores: its backend's threads inherit them
        with confined(share.cores if share is not None else None):
            selector = self._selector
            if selector is None or (pin is None and not selector.candidates_for(runtimes)):
                return load(), None, fair
            # measured in a child process when due: only the winner's runtime loads here
            selection = select_backend(
                selector,
                Request(
                    bundle_dir=bundle_dir,
                    name=name,
                    version=version,
                    digest=digest,
                    runtimes=runtimes,
                    tolerance=bundle.tolerance if bundle is not None else None,
                    topk=bundle.topk if bundle is not None else None,
                    threads=share.threads if share is not None else None,
                ),
                load=load,
                inputs_for=lambda runner: bundle_input_sets(
                    runner, bundle_dir, count=selector.settings.guard_sets
                ),
                pin=pin,
            )
        summary = selection.summary()
        summary["pinned"] = pin is not None
        return selection.runner, summary, fair

    def _warming_up(self, run: Run) -> Event:
        assert run.runner is not None and run.bundle_dir is not None
        previous = self._book.pointer.get(run.a.name)
        run.gate_p50_ms = health_gate(
            run.runner,
            run.bundle_dir,
            runs=self._gate.runs,
            baseline_p50_ms=previous.gate_p50_ms if previous is not None else None,
            max_latency_ratio=self._gate.max_latency_ratio,
        )
        run.memory_bytes = grown_since(run.rss_before)
        self._fits(run, run.memory_bytes, measured=True)
        return Event.DONE

    def _shadowing(self, run: Run) -> Event:
        """The shadow period, if asked for and another version serves
        (``agent.deployment.shadowing``); ShadowGateFailed if the shadow failed its gate.

        The shadow is the gated version loaded again, on its chosen candidate, by a
        thread at the lowest priority (``agent.serving.priority``): its runtime's own
        threads inherit it, so they never delay the serving version. A thread cannot be
        given its priority back, so a version that passed is loaded once more at serving
        priority, and warmed (one gate run) before it switches. At most two versions are
        loaded at a time, as before. A pipeline (no threads of its own) shadows as is."""
        a, runner = run.a, run.runner
        current = self.serving(a.name)
        if a.shadow is None or runner is None or current is None:
            return Event.DONE  # nothing to compare with: the normal switch
        assert run.bundle_dir is not None
        period = ShadowPeriod(
            models=self._models,
            reporter=self._reporter,
            stopping=self._stopping,
            superseded=self._superseded,
        )
        if is_pipeline(read_metadata(run.bundle_dir)):
            period.run(a, runner, current, label=run.label)
            return Event.DONE
        spec, run.runner = runner.spec, None
        runner.close()
        shadow = at_idle_priority(
            lambda: self._load_again(run, spec), what=f"shadow of {a.name} {a.version}"
        )
        try:
            period.run(a, shadow, current, label=run.label)
        finally:
            shadow.close()
        run.runner = self._load_again(run, spec)
        health_gate(run.runner, run.bundle_dir, runs=1)
        return Event.DONE

    def _load_again(self, run: Run, spec: CandidateSpec) -> Runner:
        """``run``'s version loaded again on ``spec`` (the candidate it was gated on), on
        its share's cores (its runtime's threads inherit them)."""
        assert run.bundle_dir is not None
        share = run.fair[1] if run.fair is not None else None
        with confined(share.cores if share is not None else None):
            return load_runner(
                run.bundle_dir, expected_name=run.a.name, expected_version=run.a.version, spec=spec
            )

    # -- fit before install (``fit``) ------------------------------------------------------

    def _fits_declared(self, run: Run, metadata: BundleMetadata) -> None:
        """DoesNotFit if the bundle's declared memory does not fit beside the set."""
        serving = metadata.serving
        self._fits(run, serving.memory_bytes if serving is not None else None, measured=False)

    def _fits(self, run: Run, need: int | None, *, measured: bool) -> None:
        """DoesNotFit unless ``need`` fits the budget beside the other loaded models that
        the generation in progress names (the journal holds its assignments)."""
        in_set = set(self._book.journal)
        others = [held(m) for m in self._models.snapshot() if m.name in in_set]
        problem = memory_problem(
            name=run.a.name,
            version=run.a.version,
            need=need,
            measured=measured,
            others=others,
            budget=self._memory_budget,
        )
        if problem is not None:
            raise DoesNotFit(problem)

    def _activating(self, run: Run) -> Event:
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
                reselect=a.reselect,
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
                memory_bytes=run.memory_bytes,
                **_fair_fields(run.fair),
            )
        )
        return Event.DONE

    def _rolling_back(self, run: Run) -> Event:
        """Make the previous version the active one again: pointer, then served model."""
        a = run.a
        switched = self.pointed(a)  # the pointer names what this assignment installs
        previous = None
        if switched:
            previous = self._book.revert(a.name)
            self._persist()
        serving = self.serving(a.name)
        if switched and serving is not None and serving.bundle_digest == a.bundle_digest:
            if previous is None:
                self._models.remove(a.name)
            else:
                self._models.activate(self.load_committed(previous))
        elif run.runner is not None:
            run.runner.close()
        run.runner = None
        restored = self.serving(a.name)
        run.rolled_back_to = restored.version if restored is not None else None
        run.switched_back = switched
        return Event.DONE

    def load_committed(self, pm: PersistedModel) -> LoadedModel:
        """Load a committed version from the cache: re-verified, loaded on its selected
        backend (the selection cache answers: no new measurement), gated (no ratio), its
        memory measured again (not checked: it is committed)."""
        bundle_dir = self._cache.verify_installed(pm.bundle_digest)
        before = process_rss()
        runner, selection, fair = self._load_selected(
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
            memory_bytes=grown_since(before),
            **_fair_fields(fair),
        )


def _fair_fields(fair: tuple[Want, Share | None] | None) -> dict[str, Any]:
    """``LoadedModel``'s fair-share fields from ``Steps._load_selected``'s answer."""
    if fair is None:
        return {}
    return {"want": fair[0], "share": fair[1]}
