"""Applies signed deployment commands and trust updates on one worker thread.

``submit`` / ``submit_trust`` (paho's network thread) only record the newest command /
trust document and wake the worker (``worker.Worker``, ``inbox.Inbox``). The worker
verifies a command (``verify_command``), then applies the generation rules
(``admission.admit``). A refusal is logged in one line, counted and reported in
``last_error``; nothing else changes.

``apply`` runs each assignment through the lifecycle (``install.Installer``) and records
the generation's outcome (``recorder.Recorder``: saved before it is shown). A generation
that failed for a transient reason stays *retryable*: it is applied again after a capped
exponential backoff (``retry_initial_s`` doubling up to ``retry_max_s``), and at once
when the same command is re-delivered (after a reconnect or a restart). A newer
generation supersedes the retry. A permanent failure (verification, constraints,
metadata, load, warm-up) is final for its generation. A transient failure is reported as a
``retrying`` event that says when the agent tries again; ``failed`` only once it gives up:
a permanent failure, or a retry refused (its command expired meanwhile). ``restore``
(before ``start``) is the recovery after a restart (``recovery.Recovery``); what it lines
up is resumed first on the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.deployment.admission import admit
from agent.deployment.applying import apply_generation
from agent.deployment.book import Book, Outcome
from agent.deployment.bundles import BundleCache
from agent.deployment.commands import Command
from agent.deployment.fit import models_bytes, size_text
from agent.deployment.inbox import Inbox, Work, WorkKind
from agent.deployment.install import Failure, GateSettings, Installer, Reporter
from agent.deployment.journal import AssignmentJournal, load_state
from agent.deployment.lifecycle import State, failure_event, is_terminal
from agent.deployment.loading import settled_status
from agent.deployment.memory import held_models
from agent.deployment.pipeline_order import committed_pipelines_last, pipelines_last
from agent.deployment.recorder import Recorder
from agent.deployment.recovery import Recovery
from agent.deployment.revocation import retire_untrusted
from agent.deployment.verifying import CommandVerifier
from agent.deployment.worker import Worker
from agent.errors import CommandRefused, KeeperUnavailable, TrustFetchError, TrustStoreError
from agent.selection import Selector
from agent.serving import ServedModels
from protocol import DeviceStatus, ModelAssignment, ModelFailure, SignedEnvelope

__all__ = ["DeploymentManager", "Failure", "Outcome", "Reporter", "settled_status"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeploymentManager:
    def __init__(
        self,
        *,
        label: str,
        device_id: str,
        data_dir: Path,
        cache: BundleCache,
        models: ServedModels,
        reporter: Reporter,
        keeper: CommandVerifier,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 60.0,
        max_crashes: int = 3,
        gate: GateSettings | None = None,
        cache_versions: int = 3,
        selector: Selector | None = None,
        clock: Callable[[], datetime] = _utcnow,
        memory_budget: int | None = None,
    ) -> None:
        """``memory_budget``: bytes the device's models may take in all (``fit``; None:
        no budget)."""
        self._label = label
        #: bytes the device's models may take in all (None: no budget is enforced)
        self.memory_budget = memory_budget
        if memory_budget is None:
            logger.info("%s: no memory budget (host RAM unknown, no memory_budget_mb)", label)
        else:
            logger.info("%s: the models may take %s in all", label, size_text(memory_budget))
        self._device_id = device_id
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self._keeper = keeper
        #: a trust update changed the keys: served models still to be checked against it
        self._revocation_due = False
        self._clock = clock
        self.status = DeviceStatus.IDLE
        #: deployment commands refused (signature, device, generation, expiry, trust)
        self.refused_commands = 0
        self._last_command: SignedEnvelope | None = None
        #: the active pointer, previous versions, the journal, bad bundles, the outcome
        self.book = Book()
        self._recorder = Recorder(label, data_dir, self.book)
        self._data_dir = data_dir
        self._resume: dict[str, State] | None = None
        self._installer = Installer(
            label=label,
            cache=cache,
            models=models,
            reporter=reporter,
            book=self.book,
            persist=self._recorder.persist_strict,
            set_status=lambda status: setattr(self, "status", status),
            gate=gate,
            cache_versions=cache_versions,
            stopping=lambda: self._recorder.stopped_cleanly,
            selector=selector,
            memory_budget=memory_budget,
            superseded=lambda: self._inbox.has_other_command(self._last_command),
        )
        self._recovery = Recovery(
            label=label,
            book=self.book,
            models=models,
            load=self._installer.load_committed,
            persist=self._recorder.persist,
            max_crashes=max_crashes,
            order=lambda committed: committed_pipelines_last(committed, cache.model_dir),
        )
        self._inbox = Inbox(label, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        #: the failed assignments when the last outcome was recorded (None: none yet)
        self._failed: tuple[int, list[AssignmentJournal]] | None = None
        self._worker = Worker(label, self._inbox, first=self._resume_interrupted, handle=self._do)

    # -- what the agent reads --------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The highest generation processed."""
        return self.book.outcome.generation

    @property
    def last_error(self) -> str | None:
        """The last generation's error, after why a previous version serves instead of a
        committed one that did not restore (until the committed one serves again)."""
        error = self.book.outcome.last_error
        notes = [n for n in self._recovery.fallback_notes() if n != error]
        return "; ".join([*notes, error] if error is not None else notes) or None

    @property
    def failures(self) -> list[ModelFailure]:
        """Each model of the last generation processed that failed, with its own reason
        (``retrying``: a transient failure the agent applies again by itself). Taken when
        the generation's outcome was recorded: a retry in flight does not hide it."""
        outcome = self.book.outcome
        settled = self._failed if self._failed is not None else self._failed_now()
        generation, failed = settled
        if generation != outcome.generation:
            return []
        return [
            ModelFailure(
                name=e.assignment.name,
                version=e.assignment.version,
                deployment_id=e.assignment.deployment_id,
                reason=e.reason or "failed",
                retrying=e.transient and outcome.retryable,
            )
            for e in failed
        ]

    def _failed_now(self) -> tuple[int, list[AssignmentJournal]]:
        """The journal's generation and its failed assignments, by name."""
        failed = [e for _, e in sorted(self.book.journal.items()) if e.state == State.FAILED]
        return self.book.journal_generation, failed

    def memory_used(self) -> int:
        """What the loaded models count for the fit rule in all (measured, else declared)."""
        return models_bytes(held_models(self._models))

    @property
    def retrying(self) -> bool:
        """Whether the last generation failed transiently: the agent applies it again."""
        return self.book.outcome.retryable

    # -- worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def request_stop(self) -> None:
        """Begin stopping: no new work; a step failing from now on (a download cut off by
        closing the fetcher) leaves its assignment in flight, to be resumed at next start."""
        self._recorder.stopped_cleanly = True
        self._inbox.stop()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; a deployment still in flight is recorded as stopped cleanly
        (a SIGTERM is not a crash: the next start resumes it without counting one)."""
        self.request_stop()
        self._worker.join(timeout)
        if any(not is_terminal(e.state) for e in self.book.journal.values()):
            self._recorder.persist()

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs (false before start, after stop, or if it died)."""
        return self._worker.alive

    def submit(self, envelope: SignedEnvelope) -> None:
        """Hand a deployment command to the worker (the newest wins); never blocks long."""
        self._inbox.submit_command(envelope)

    def submit_trust(self, raw: bytes) -> None:
        """Hand a trust document (from the trust topic) to the worker."""
        self._inbox.submit_trust(raw)

    def _do(self, work: Work) -> None:
        if work.kind is WorkKind.TRUST:
            self.handle_trust(work.raw)
        elif work.envelope is not None:
            self.handle_command(work.envelope, retry=work.retry)

    # -- trust and commands ----------------------------------------------------------------

    def handle_trust(self, raw: bytes) -> None:
        try:
            changed = self._keeper.offer_trust(raw)
        except TrustFetchError as exc:
            logger.warning("%s: trust update postponed: %s", self._label, exc)
            return
        except TrustStoreError as exc:
            self._report_refusal(f"refused trust document: {exc}")
            return
        if changed:
            self._revocation_due = True
        self._check_revocations()
        if changed and self._last_command is not None:
            self._inbox.resubmit_command(self._last_command)  # evaluate it with the new trust

    def _check_revocations(self) -> None:
        """After a trust update: retire what it revoked. If the keeper could not check
        (``KeeperUnavailable``), the models keep serving and the check comes again with
        the next trust document or command (the last command is evaluated again at once)."""
        if not self._revocation_due:
            return
        try:
            self._retire_untrusted()
        except KeeperUnavailable as exc:
            logger.warning(
                "%s: served models not checked against the new trust yet: %s", self._label, exc
            )
            return
        self._revocation_due = False

    def _retire_untrusted(self) -> None:
        """Stop serving models the new trust document no longer vouches for (revoked key)."""
        outcome = self.book.outcome
        for message in retire_untrusted(self._models, self._cache, self.book):
            outcome = replace(outcome, last_error=message)
            logger.warning("%s: %s", self._label, message)
        self._recorder.settle(outcome)  # saved before it is visible
        self._settle_status()
        self._reporter.state_changed()

    def handle_command(self, envelope: SignedEnvelope, *, retry: bool = False) -> None:
        """Verify a command, apply the generation rules, then apply it (or refuse it)."""
        if not retry:
            self._last_command = envelope
        self._check_revocations()
        try:
            command = self._keeper.verify_command(
                envelope, device_id=self._device_id, now=self._clock()
            )
            accepted = admit(
                command,
                self.book,
                now=self._clock(),
                persist=self._recorder.persist_strict,
                label=self._label,
            )
            if not accepted:
                return
        except CommandRefused as exc:
            if retry:
                self._inbox.cancel_retry()
                self._give_up(f"its retry was refused: {exc}")
                self.book.outcome = replace(self.book.outcome, retryable=False)
            self._report_refusal(f"refused deployment command: {exc}")
            self.refused_commands += 1  # counted once reported, so watchers see both
            return
        except (TrustFetchError, OSError) as exc:
            delay = self._inbox.retry_later(envelope)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.warning("%s: deployment command postponed %.1fs: %s", self._label, delay, reason)
            # shown at once, saved with the next write
            self.book.outcome = replace(
                self.book.outcome, last_error=f"deployment command postponed: {reason}"
            )
            self._reporter.state_changed()
            return
        self.apply(command)

    def _report_refusal(self, message: str) -> None:
        logger.warning("%s: %s", self._label, message)
        self._recorder.settle(replace(self.book.outcome, last_error=message))
        self._reporter.state_changed()

    # -- applying --------------------------------------------------------------------------

    def apply(self, command: Command) -> None:
        desired = command.desired
        logger.info(
            "%s: applying deployment command generation %s", self._label, desired.generation
        )
        self._apply(desired.generation, desired.models, command)

    def _apply(
        self,
        generation: int,
        assignments: list[ModelAssignment],
        command: Command | None,
        *,
        resume: dict[str, State] | None = None,
    ) -> None:
        """Run every assignment of ``generation`` (``resume``: the interrupted ones, from
        where a restarted agent picks them up); then record the outcome."""
        applied = apply_generation(
            label=self._label,
            book=self.book,
            models=self._models,
            installer=self._installer,
            generation=generation,
            assignments=pipelines_last(assignments),
            resume=resume,
        )
        if applied is None:  # interrupted by the agent stopping
            self._recorder.persist()  # records the clean stop; the journal says where
            return
        self._failed = self._failed_now()
        self._recorder.settle(applied.outcome)  # saved before it is visible
        when = self._schedule_retry(command) if command is not None else None
        for failure in applied.retrying:
            self._report_retrying(failure, generation, when)
        self._settle_status()
        self._reporter.state_changed()

    def _schedule_retry(self, command: Command) -> str | None:
        """After ``apply``: arm the retry of a retryable generation, else cancel any;
        when it retries, in words (None if it does not)."""
        if not self.book.outcome.retryable:
            self._inbox.cancel_retry()
            return None
        delay = self._inbox.retry_later(command.envelope)
        at = (self._clock() + timedelta(seconds=delay)).isoformat(timespec="seconds")
        logger.warning(
            "%s: generation %s failed for a transient reason; retrying in %.1fs: %s",
            self._label,
            command.generation,
            delay,
            self.last_error,
        )
        return f"retrying in {delay:g}s (at {at}) and whenever the command is delivered again"

    def _report_retrying(self, failure: Failure, generation: int, when: str | None) -> None:
        """A ``retrying`` event (``lifecycle.FAILURE_EVENT``) for an assignment that failed
        transiently: what failed, and when the agent tries again by itself."""
        assert failure.assignment is not None
        when = when or "retrying when the deployment command is delivered again"
        kind = failure_event(will_retry=True)
        self._reporter.event(kind, failure.assignment, generation, f"{failure.reason}; {when}")

    def _give_up(self, why: str) -> None:
        """A retry of the generation in the journal was refused (its command expired):
        the agent gives up on what failed transiently in it; ``failed`` events say why."""
        generation = self.book.journal_generation
        for entry in self.book.journal.values():
            if entry.state == State.FAILED and entry.transient:
                reason = f"{entry.reason}; gave up: {why}"
                logger.warning("%s: %s: %s", self._label, entry.assignment.name, reason)
                kind = failure_event(will_retry=False)
                self._reporter.event(kind, entry.assignment, generation, reason)

    # -- restart ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Serve the committed models again and line up the resumption of a deployment
        the agent was interrupted in (``recovery.Recovery``); call before ``start``."""
        resume = self._recovery.restore(load_state(self._data_dir))
        if resume:
            self._resume = resume
        self._settle_status()

    def _settle_status(self) -> None:
        self.status = settled_status(serving=len(self._models) > 0, failed=self.book.outcome.failed)

    def _resume_interrupted(self) -> None:
        """On the worker, first: finish the generation the agent was interrupted in."""
        resume, self._resume = self._resume, None
        if not resume:
            return
        generation = self.book.journal_generation
        assignments = [e.assignment for e in self.book.journal.values()]
        logger.info("%s: resuming generation %s after a restart", self._label, generation)
        self._apply(generation, assignments, None, resume=resume)
