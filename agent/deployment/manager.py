"""Applies desired states on a worker thread, one assignment at a time, via the table.

``submit`` (called from paho's network thread) only records the newest desired state
and wakes the worker; older pending ones are coalesced away, and generations not above
the last processed one are ignored. ``apply`` runs each assignment through
``Lifecycle``: received -> downloading -> verifying -> loading -> warming_up ->
activating -> active, or failed with the previous model still serving.

Retries: a generation that failed for a transient reason (``TransientDownloadError``:
control plane unreachable, reset, timeout, HTTP 5xx) stays *retryable*. The worker
applies it again after a capped exponential backoff (``retry_initial_s`` doubling up
to ``retry_max_s``), and at once when the same generation is delivered again (the
retained desired state after a reconnect or a restart). A newer generation supersedes
the retry. A permanent failure (verification, metadata, load, warm-up) is final for
its generation: only a newer generation is applied.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import NamedTuple, Protocol

from agent.deployment.bundles import BundleCache
from agent.deployment.inbox import Inbox
from agent.deployment.journal import PersistedModel, PersistedState, load_state, save_state
from agent.deployment.lifecycle import Lifecycle, Phase
from agent.deployment.loading import load_runner, settled_status
from agent.errors import AgentError, TransientDownloadError
from agent.runners.base import Runner
from agent.serving import LoadedModel, ServedModels
from agent.warmup import warm_up
from protocol import DesiredState, DeviceStatus, EventKind, ModelAssignment

__all__ = ["DeploymentManager", "Failure", "Reporter", "load_runner", "settled_status"]

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


class Failure(NamedTuple):
    """Why one assignment failed; ``transient`` failures make the generation retryable."""

    message: str
    transient: bool


class DeploymentManager:
    def __init__(
        self,
        *,
        label: str,
        data_dir: Path,
        cache: BundleCache,
        models: ServedModels,
        reporter: Reporter,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 60.0,
    ) -> None:
        self._label = label
        self._data_dir = data_dir
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self.generation = -1
        self.status = DeviceStatus.IDLE
        self.last_error: str | None = None
        #: whether ``generation`` failed, and whether it is to be applied again
        self.failed = False
        self.retryable = False
        self._phases: dict[str, Phase] = {}
        self._inbox = Inbox(label, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._thread: threading.Thread | None = None

    # -- worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"deploy-{self._label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._inbox.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, desired: DesiredState) -> None:
        """Hand ``desired`` to the worker (newest generation wins); never blocks long."""
        self._inbox.submit(desired)

    def _run(self) -> None:
        while (desired := self._inbox.next()) is not None:
            try:
                self.apply(desired)
            except Exception:  # a bug must not kill the worker
                logger.exception(
                    "%s: applying generation %s failed", self._label, desired.generation
                )
                self._inbox.cancel_retry()

    # -- applying --------------------------------------------------------------------------

    def wants(self, desired: DesiredState) -> bool:
        """A newer generation, or the current one again if it failed transiently."""
        return desired.generation > self.generation or (
            desired.generation == self.generation and self.retryable
        )

    def apply(self, desired: DesiredState) -> None:
        if not self.wants(desired):
            logger.debug("%s: generation %s already processed", self._label, desired.generation)
            return
        generation = desired.generation
        logger.info("%s: applying desired state generation %s", self._label, generation)
        failures = [f for a in desired.models if (f := self._apply_one(a, generation)) is not None]
        wanted = {a.name for a in desired.models}
        for model in self._models.snapshot():
            if model.name not in wanted:
                logger.info("%s: %s is no longer desired; unloading", self._label, model.name)
                self._models.remove(model.name)
                self._phases.pop(model.name, None)
        self.generation = generation
        self.last_error = failures[0].message if failures else None
        self.failed = bool(failures)
        self.retryable = any(f.transient for f in failures)
        self._schedule_retry(desired)
        self._persist()
        self._settle(failed=self.failed)

    def _schedule_retry(self, desired: DesiredState) -> None:
        """After ``apply``: arm the retry of a retryable generation, else cancel any."""
        if not self.retryable:
            self._inbox.cancel_retry()
            return
        delay = self._inbox.retry_later(desired)
        logger.warning(
            "%s: generation %s failed for a transient reason; retrying in %.1fs: %s",
            self._label,
            desired.generation,
            delay,
            self.last_error,
        )

    def _settle(self, *, failed: bool) -> None:
        self.status = settled_status(serving=len(self._models) > 0, failed=failed)
        self._reporter.state_changed()

    def _apply_one(self, a: ModelAssignment, generation: int) -> Failure | None:
        """Run one assignment through the lifecycle; why it failed, or None."""
        label = f"{self._label} {a.name} {a.version}"
        life = Lifecycle(label, self._phases.get(a.name, Phase.IDLE))

        def step(phase: Phase) -> None:
            life.advance(phase)
            self._phases[a.name] = phase
            if phase in (Phase.ACTIVE, Phase.FAILED):
                # a failed update leaves the previous model serving: never report FAILED then
                self.status = settled_status(
                    serving=len(self._models) > 0, failed=phase is Phase.FAILED
                )
            else:
                self.status = life.status
                self._reporter.state_changed()

        step(Phase.RECEIVED)
        self._reporter.event(EventKind.RECEIVED, a, generation)
        try:
            current = self._models.get(a.name)
        except AgentError:
            current = None
        if current is not None and current.bundle_digest == a.bundle_digest:
            current.deployment_id = a.deployment_id
            step(Phase.ACTIVE)
            logger.info("%s: already active", label)
            return None
        runner: Runner | None = None
        try:
            bundle_dir = self._cache.cached(a.bundle_digest)
            if bundle_dir is None:
                step(Phase.DOWNLOADING)
                self._cache.download(a)
                self._reporter.event(EventKind.DOWNLOADED, a, generation)
                step(Phase.VERIFYING)
                bundle_dir = self._cache.verify_and_install(a.bundle_digest)
            else:
                step(Phase.VERIFYING)
                self._reporter.event(EventKind.DOWNLOADED, a, generation)
            self._reporter.event(EventKind.VERIFIED, a, generation)
            step(Phase.LOADING)
            runner = load_runner(bundle_dir, expected_name=a.name, expected_version=a.version)
            step(Phase.WARMING_UP)
            warm_up(runner)
            step(Phase.ACTIVATING)
            self._models.activate(
                LoadedModel(a.name, a.version, a.bundle_digest, bundle_dir, runner, a.deployment_id)
            )
            self._persist()
            step(Phase.ACTIVE)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, AgentError):
                logger.exception("%s: unexpected failure", label)
                reason = f"internal error: {type(exc).__name__}: {reason}"
            if runner is not None:
                runner.close()
            self._cache.discard_staging(a.bundle_digest)
            step(Phase.FAILED)
            logger.warning("%s: deployment failed: %s", label, reason)
            self._reporter.event(EventKind.FAILED, a, generation, reason)
            transient = isinstance(exc, TransientDownloadError)
            return Failure(f"{a.name} {a.version}: {reason}", transient)
        logger.info("%s: activated (%s)", label, runner.backend)
        self._reporter.event(EventKind.ACTIVATED, a, generation)
        return None

    # -- persistence and restart -----------------------------------------------------------

    def _persist(self) -> None:
        state = PersistedState(
            generation=self.generation,
            last_error=self.last_error,
            failed=self.failed,
            retryable=self.retryable,
            models=[
                PersistedModel(
                    name=m.name,
                    version=m.version,
                    bundle_digest=m.bundle_digest,
                    backend=m.backend,
                    deployment_id=m.deployment_id,
                )
                for m in self._models.snapshot()
            ],
        )
        try:
            save_state(self._data_dir, state)
        except OSError as exc:
            logger.error("%s: cannot persist state: %s", self._label, exc)

    def restore(self) -> None:
        """Serve the persisted models again, re-verifying each bundle before loading it.

        The outcome of the persisted generation (``last_error``, failed, retryable) is
        reported again until a later generation succeeds.
        """
        state = load_state(self._data_dir)
        self.generation = state.generation
        self.last_error = state.last_error
        self.failed = state.failed
        self.retryable = state.retryable
        failures: list[str] = []
        for pm in state.models:
            runner: Runner | None = None
            try:
                bundle_dir = self._cache.verify_installed(pm.bundle_digest)
                runner = load_runner(bundle_dir, expected_name=pm.name, expected_version=pm.version)
                warm_up(runner)
            except AgentError as exc:
                if runner is not None:
                    runner.close()
                failures.append(f"{pm.name} {pm.version}: restore failed: {exc}")
                logger.warning("%s: %s", self._label, failures[-1])
                continue
            self._models.activate(
                LoadedModel(
                    pm.name, pm.version, pm.bundle_digest, bundle_dir, runner, pm.deployment_id
                )
            )
            self._phases[pm.name] = Phase.ACTIVE
            logger.info("%s: restored %s %s", self._label, pm.name, pm.version)
        if failures:
            # forget the generation so the retained desired state is applied again
            self.generation = -1
            self.last_error = failures[0]
            self.failed = True
        self.status = settled_status(serving=len(self._models) > 0, failed=self.failed)
