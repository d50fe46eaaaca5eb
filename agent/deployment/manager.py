"""Applies desired states on a worker thread, one assignment at a time, via the table.

``submit`` (called from paho's network thread) only records the newest desired state
and wakes the worker; older pending ones are coalesced away, and generations not above
the last processed one are ignored. ``apply`` runs each assignment through
``Lifecycle``: received -> downloading -> verifying -> loading -> warming_up ->
activating -> active, or failed with the previous model still serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

from agent.deployment.bundles import BundleCache, read_metadata
from agent.deployment.journal import PersistedModel, PersistedState, load_state, save_state
from agent.deployment.lifecycle import Lifecycle, Phase
from agent.errors import AgentError, VerificationError
from agent.runners import create_runner
from agent.runners.base import Runner
from agent.serving import LoadedModel, ServedModels
from agent.warmup import warm_up
from protocol import DesiredState, DeviceStatus, EventKind, ModelAssignment

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


class DeploymentManager:
    def __init__(
        self,
        *,
        label: str,
        data_dir: Path,
        cache: BundleCache,
        models: ServedModels,
        reporter: Reporter,
    ) -> None:
        self._label = label
        self._data_dir = data_dir
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self.generation = -1
        self.status = DeviceStatus.IDLE
        self.last_error: str | None = None
        self._phases: dict[str, Phase] = {}
        self._cond = threading.Condition()
        self._pending: DesiredState | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"deploy-{self._label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, desired: DesiredState) -> None:
        """Record ``desired`` for the worker (newest generation wins); never blocks long."""
        with self._cond:
            if self._pending is None or desired.generation >= self._pending.generation:
                self._pending = desired
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                desired, self._pending = self._pending, None
            if desired is not None:
                try:
                    self.apply(desired)
                except Exception:  # a bug must not kill the worker
                    logger.exception(
                        "%s: applying generation %s failed", self._label, desired.generation
                    )

    # -- applying --------------------------------------------------------------------------

    def apply(self, desired: DesiredState) -> None:
        if desired.generation <= self.generation:
            logger.debug("%s: generation %s already processed", self._label, desired.generation)
            return
        generation = desired.generation
        logger.info("%s: applying desired state generation %s", self._label, generation)
        errors = [
            err for a in desired.models if (err := self._apply_one(a, generation)) is not None
        ]
        wanted = {a.name for a in desired.models}
        for model in self._models.snapshot():
            if model.name not in wanted:
                logger.info("%s: %s is no longer desired; unloading", self._label, model.name)
                self._models.remove(model.name)
                self._phases.pop(model.name, None)
        self.generation = generation
        self.last_error = errors[0] if errors else None
        self._persist()
        self._settle(failed=bool(errors))

    def _settle(self, *, failed: bool) -> None:
        self.status = settled_status(serving=len(self._models) > 0, failed=failed)
        self._reporter.state_changed()

    def _apply_one(self, a: ModelAssignment, generation: int) -> str | None:
        """Run one assignment through the lifecycle; the failure reason, or None."""
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
            return f"{a.name} {a.version}: {reason}"
        logger.info("%s: activated (%s)", label, runner.backend)
        self._reporter.event(EventKind.ACTIVATED, a, generation)
        return None

    # -- persistence and restart -----------------------------------------------------------

    def _persist(self) -> None:
        state = PersistedState(
            generation=self.generation,
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
        """Serve the persisted models again, re-verifying each bundle before loading it."""
        state = load_state(self._data_dir)
        self.generation = state.generation
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
        self.status = settled_status(serving=len(self._models) > 0, failed=bool(failures))


def settled_status(*, serving: bool, failed: bool) -> DeviceStatus:
    """The status once a generation is processed: what the device does *now*.

    A device still serving a model is ACTIVE even if the newest deployment failed (the
    failure is in ``last_error`` and the FAILED event); FAILED means nothing serves.
    """
    if serving:
        return DeviceStatus.ACTIVE
    return DeviceStatus.FAILED if failed else DeviceStatus.IDLE


def load_runner(bundle_dir: Path, *, expected_name: str, expected_version: str) -> Runner:
    """Load a verified bundle into a fresh runner; its signed metadata must match."""
    metadata = read_metadata(bundle_dir)
    if (metadata.name, metadata.version) != (expected_name, expected_version):
        raise VerificationError(
            f"bundle holds {metadata.name} {metadata.version}, "
            f"not {expected_name} {expected_version}"
        )
    runner = create_runner()
    try:
        runner.load(bundle_dir, metadata)
    except AgentError:
        runner.close()
        raise
    return runner
