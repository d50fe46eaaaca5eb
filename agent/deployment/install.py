"""One model assignment through the lifecycle table, from received to active or failed.

received -> downloading -> verifying -> loading -> warming_up -> activating -> active
(or received -> verifying for a bundle already cached, received -> active when it is
already the active one), or failed with the previous model still serving. Each step is
reported (status, events); a failure is a one-line ``Failure``, transient when a retry
may succeed (``TransientDownloadError``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple, Protocol

from agent.deployment.bundles import BundleCache, read_metadata
from agent.deployment.lifecycle import Lifecycle, Phase
from agent.deployment.loading import load_runner, settled_status
from agent.errors import AgentError, TransientDownloadError
from agent.runners.base import Runner
from agent.serving import LoadedModel, ServedModels
from agent.warmup import warm_up
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


class Failure(NamedTuple):
    """Why one assignment failed; ``transient`` failures make the generation retryable."""

    message: str
    transient: bool


class Installer:
    """Runs assignments; ``set_status`` shows progress, ``persist`` saves after a swap."""

    def __init__(
        self,
        *,
        label: str,
        cache: BundleCache,
        models: ServedModels,
        reporter: Reporter,
        set_status: Callable[[DeviceStatus], None],
        persist: Callable[[], None],
    ) -> None:
        self._label = label
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self._set_status = set_status
        self._persist = persist
        self.phases: dict[str, Phase] = {}

    def run(self, a: ModelAssignment, generation: int) -> Failure | None:
        """Run one assignment through the lifecycle; why it failed, or None."""
        label = f"{self._label} {a.name} {a.version}"
        life = Lifecycle(label, self.phases.get(a.name, Phase.IDLE))

        def step(phase: Phase) -> None:
            life.advance(phase)
            self.phases[a.name] = phase
            if phase in (Phase.ACTIVE, Phase.FAILED):
                # a failed update leaves the previous model serving: never report FAILED then
                serving = len(self._models) > 0
                self._set_status(settled_status(serving=serving, failed=phase is Phase.FAILED))
            else:
                self._set_status(life.status)
                self._reporter.state_changed()

        step(Phase.RECEIVED)
        self._reporter.event(EventKind.RECEIVED, a, generation)
        try:
            current = self._models.get(a.name)
        except AgentError:
            current = None
        if current is not None and current.bundle_digest == a.bundle_digest:
            try:
                self._cache.check_still_trusted(a.bundle_digest)
            except AgentError as exc:  # e.g. its release key was revoked: stop serving it
                self._models.remove(a.name)
                step(Phase.FAILED)
                self._reporter.event(EventKind.FAILED, a, generation, str(exc))
                return Failure(f"{a.name} {a.version}: {exc}", transient=False)
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
                self._cache.check_constraints(read_metadata(bundle_dir))
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
