"""Applies signed deployment commands and trust updates on one worker thread.

``submit`` / ``submit_trust`` (paho's network thread) only record the newest command /
trust document and wake the worker. The worker verifies a command (``verify_command``),
then applies the generation rules: a lower generation, or the same one with another
payload, is refused; the same one again is a no-op unless it was interrupted or failed
transiently; an expired one is refused. A newly accepted generation and its payload
digest are persisted *before* the agent acts on it. A refusal is logged in one line,
counted and reported in ``last_error``; nothing else changes.

``apply`` runs each assignment through the lifecycle (``install.Installer``). A
generation that failed for a transient reason stays *retryable*: it is applied again
after a capped exponential backoff (``retry_initial_s`` doubling up to ``retry_max_s``),
and at once when the same command is re-delivered (after a reconnect or a restart). A
newer generation supersedes the retry. A permanent failure (verification, constraints,
metadata, load, warm-up) is final for its generation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from agent.deployment.book import Book
from agent.deployment.bundles import BundleCache
from agent.deployment.commands import Command, check_fresh, verify_command
from agent.deployment.faults import crash_point
from agent.deployment.inbox import Inbox, WorkKind
from agent.deployment.install import Failure, GateSettings, Installer, Interrupted, Reporter
from agent.deployment.journal import BadBundle, PersistedState, load_state, save_state
from agent.deployment.lifecycle import State, is_terminal, resume_state
from agent.deployment.loading import settled_status
from agent.deployment.revocation import untrusted_models
from agent.errors import AgentError, CommandRefused, TrustFetchError, TrustStoreError
from agent.selection import Selector
from agent.serving import ServedModels
from agent.trust_store import TrustStore
from protocol import DeviceStatus, ModelAssignment, SignedEnvelope

__all__ = ["DeploymentManager", "Failure", "Reporter", "settled_status"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What the last processed generation came to (reported and persisted)."""

    generation: int
    last_error: str | None
    failed: bool
    retryable: bool


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
        trust: TrustStore,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 60.0,
        max_crashes: int = 3,
        gate: GateSettings | None = None,
        cache_versions: int = 3,
        selector: Selector | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._label = label
        self._device_id = device_id
        self._data_dir = data_dir
        self._cache = cache
        self._models = models
        self._reporter = reporter
        self._trust = trust
        self._clock = clock
        #: highest generation processed; highest accepted, and its payload's sha256
        self.generation = -1
        self.accepted_generation = -1
        self.accepted_digest: str | None = None
        self.status = DeviceStatus.IDLE
        self.last_error: str | None = None
        #: whether ``generation`` failed, and whether it is to be applied again
        self.failed = False
        self.retryable = False
        #: deployment commands refused (signature, device, generation, expiry, trust)
        self.refused_commands = 0
        self._last_command: SignedEnvelope | None = None
        self._max_crashes = max(1, max_crashes)
        #: the active pointer, previous versions, the journal and bad bundles
        self.book = Book()
        self._resume: dict[str, State] | None = None
        self._stopped_cleanly = False
        self._installer = Installer(
            label=label,
            cache=cache,
            models=models,
            reporter=reporter,
            book=self.book,
            persist=self._persist_strict,
            set_status=lambda status: setattr(self, "status", status),
            gate=gate,
            cache_versions=cache_versions,
            stopping=lambda: self._stopped_cleanly,
            selector=selector,
        )
        self._inbox = Inbox(label, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._thread: threading.Thread | None = None

    # -- worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"deploy-{self._label}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Begin stopping: no new work; a step failing from now on (a download cut off by
        closing the fetcher) leaves its assignment in flight, to be resumed at next start."""
        self._stopped_cleanly = True
        self._inbox.stop()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; a deployment still in flight is recorded as stopped cleanly
        (a SIGTERM is not a crash: the next start resumes it without counting one)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if any(not is_terminal(e.state) for e in self.book.journal.values()):
            self._persist()

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs (false before start, after stop, or if it died)."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, envelope: SignedEnvelope) -> None:
        """Hand a deployment command to the worker (the newest wins); never blocks long."""
        self._inbox.submit_command(envelope)

    def submit_trust(self, raw: bytes) -> None:
        """Hand a trust document (from the trust topic) to the worker."""
        self._inbox.submit_trust(raw)

    def _run(self) -> None:
        try:
            self._resume_interrupted()
        except Exception:  # a bug must not kill the worker
            logger.exception("%s: resuming the interrupted deployment failed", self._label)
        while (work := self._inbox.next()) is not None:
            try:
                if work.kind is WorkKind.TRUST:
                    self.handle_trust(work.raw)
                elif work.envelope is not None:
                    self.handle_command(work.envelope, retry=work.retry)
            except Exception:  # a bug must not kill the worker
                logger.exception("%s: handling %s failed", self._label, work.kind)
                self._inbox.cancel_retry()

    # -- trust and commands ----------------------------------------------------------------

    def handle_trust(self, raw: bytes) -> None:
        try:
            changed = self._trust.offer(raw)
        except TrustFetchError as exc:
            logger.warning("%s: trust update postponed: %s", self._label, exc)
            return
        except TrustStoreError as exc:
            self._report_refusal(f"refused trust document: {exc}")
            return
        if changed:
            self._retire_untrusted()
        if changed and self._last_command is not None:
            self._inbox.resubmit_command(self._last_command)  # evaluate it with the new trust

    def _retire_untrusted(self) -> None:
        """Stop serving models the new trust document no longer vouches for (revoked key)."""
        outcome = self._outcome()
        for model, reason in untrusted_models(self._models, self._cache):
            self._models.remove(model.name)
            self.book.pointer.pop(model.name, None)
            message = f"stopped serving {model.name} {model.version}: {reason}"
            outcome = replace(outcome, last_error=message)
            logger.warning("%s: %s", self._label, message)
        self._persist(outcome=outcome)  # saved before it is visible
        self._show(outcome)
        self.status = settled_status(serving=len(self._models) > 0, failed=self.failed)
        self._reporter.state_changed()

    def handle_command(self, envelope: SignedEnvelope, *, retry: bool = False) -> None:
        """Verify a command, apply the generation rules, then apply it (or refuse it)."""
        if not retry:
            self._last_command = envelope
        try:
            command = verify_command(
                envelope, trust=self._trust, device_id=self._device_id, now=self._clock()
            )
            if not self._admit(command):
                return
        except CommandRefused as exc:
            if retry:
                self._inbox.cancel_retry()
            self._report_refusal(f"refused deployment command: {exc}")
            self.refused_commands += 1  # counted once reported, so watchers see both
            return
        except (TrustFetchError, OSError) as exc:
            delay = self._inbox.retry_later(envelope)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.warning("%s: deployment command postponed %.1fs: %s", self._label, delay, reason)
            self.last_error = f"deployment command postponed: {reason}"
            self._reporter.state_changed()
            return
        self.apply(command)

    def _admit(self, command: Command) -> bool:
        """The generation rules; True to act on ``command``. Persists a new acceptance."""
        generation, accepted = command.generation, self.accepted_generation
        if generation < accepted:
            raise CommandRefused(f"generation {generation} is lower than the accepted {accepted}")
        if generation == accepted:
            if command.digest != self.accepted_digest:
                raise CommandRefused(
                    f"generation {generation} was already accepted with different content"
                )
            if self.generation >= generation and not self.retryable:
                logger.debug("%s: generation %s already processed", self._label, generation)
                return False
            check_fresh(command, self._clock())
            return True
        check_fresh(command, self._clock())
        previous = (self.accepted_generation, self.accepted_digest)
        self.accepted_generation, self.accepted_digest = generation, command.digest
        try:
            self._persist(strict=True)  # before acting: survives a crash or restart
        except OSError:
            self.accepted_generation, self.accepted_digest = previous
            raise
        return True

    def _report_refusal(self, message: str) -> None:
        logger.warning("%s: %s", self._label, message)
        outcome = replace(self._outcome(), last_error=message)
        self._persist(outcome=outcome)  # saved before it is visible
        self._show(outcome)
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
        book = self.book
        if book.journal_generation != generation:
            book.journal_generation, book.journal = generation, {}
        for a in assignments:
            book.entry(a)
        failures: list[Failure] = []
        for a in assignments:
            if resume is not None and a.name not in resume:  # settled before the restart
                entry = book.journal[a.name]
                if entry.state == State.FAILED:
                    failures.append(
                        Failure(f"{a.name} {a.version}: {entry.reason}", entry.transient)
                    )
                continue
            start = resume.get(a.name, State.IDLE) if resume is not None else State.IDLE
            try:
                failure = self._installer.run(a, generation, resume=start)
            except Interrupted:
                self._persist()  # records the clean stop; the journal says where it was
                return
            if failure is not None:
                failures.append(failure)
        wanted = {a.name for a in assignments}
        for model in self._models.snapshot():
            if model.name not in wanted:
                logger.info("%s: %s is no longer desired; unloading", self._label, model.name)
                self._models.remove(model.name)
        for name in [n for n in book.pointer if n not in wanted]:
            book.previous[name] = book.pointer.pop(name)
        outcome = Outcome(
            generation=generation,
            last_error=failures[0].message if failures else None,
            failed=bool(failures),
            retryable=any(f.transient for f in failures),
        )
        self._persist(outcome=outcome)  # saved before it is visible: a reader sees it on disk
        self._show(outcome)
        if command is not None:
            self._schedule_retry(command)
        self.status = settled_status(serving=len(self._models) > 0, failed=self.failed)
        self._reporter.state_changed()

    def _schedule_retry(self, command: Command) -> None:
        """After ``apply``: arm the retry of a retryable generation, else cancel any."""
        if not self.retryable:
            self._inbox.cancel_retry()
            return
        delay = self._inbox.retry_later(command.envelope)
        logger.warning(
            "%s: generation %s failed for a transient reason; retrying in %.1fs: %s",
            self._label,
            command.generation,
            delay,
            self.last_error,
        )

    # -- persistence and restart -----------------------------------------------------------

    def _persist_strict(self) -> None:
        self._persist(strict=True)

    def _outcome(self) -> Outcome:
        return Outcome(self.generation, self.last_error, self.failed, self.retryable)

    def _show(self, outcome: Outcome) -> None:
        self.generation, self.last_error = outcome.generation, outcome.last_error
        self.failed, self.retryable = outcome.failed, outcome.retryable

    def _persist(self, *, strict: bool = False, outcome: Outcome | None = None) -> None:
        """Save the state; a new ``outcome`` is saved here before ``_show`` makes it
        visible, so whoever reads the attributes finds them on disk too."""
        book = self.book
        o = outcome if outcome is not None else self._outcome()
        state = PersistedState(
            accepted_generation=self.accepted_generation,
            accepted_digest=self.accepted_digest,
            models=sorted(book.pointer.values(), key=lambda m: m.name),
            previous=sorted(book.previous.values(), key=lambda m: m.name),
            journal_generation=book.journal_generation,
            journal=[book.journal[name] for name in sorted(book.journal)],
            bad=sorted(book.bad.values(), key=lambda b: b.bundle_digest),
            stopped_cleanly=self._stopped_cleanly,
            restoring=book.restoring,
            generation=o.generation,
            last_error=o.last_error,
            failed=o.failed,
            retryable=o.retryable,
        )
        try:
            save_state(self._data_dir, state)
        except OSError as exc:
            logger.error("%s: cannot persist state: %s", self._label, exc)
            if strict:
                raise

    def restore(self) -> None:
        """Serve the committed models again (each bundle re-verified before loading), and
        line up the resumption of a deployment the agent was interrupted in.

        An assignment found in flight counts one more crash; at ``max_crashes`` its bundle
        is marked bad for this generation and the pointer goes back to the previous
        version *before* anything is loaded (a model that kills the agent while loading
        must not kill every restart). The outcome of the persisted generation
        (``last_error``, failed, retryable) is reported again until a later one succeeds.
        """
        state = load_state(self._data_dir)
        self.accepted_generation = state.accepted_generation
        self.accepted_digest = state.accepted_digest
        self.generation = state.generation
        self.last_error = state.last_error
        self.failed = state.failed
        self.retryable = state.retryable
        book = self.book
        book.pointer = {m.name: m for m in state.models}
        book.previous = {m.name: m for m in state.previous}
        book.journal_generation = state.journal_generation
        book.journal = {e.assignment.name: e for e in state.journal}
        book.bad = {b.bundle_digest: b for b in state.bad}
        crashed = not state.stopped_cleanly
        resume = self._count_crashes(crashed=crashed)
        failures = self._guard_boot_loop(state.restoring if crashed else {})
        for pm in list(book.pointer.values()):
            crash_point(f"restoring-{pm.version}")
            try:
                self._models.activate(self._installer.load_committed(pm))
            except AgentError as exc:
                failures.append(f"{pm.name} {pm.version}: restore failed: {exc}")
                logger.warning("%s: %s", self._label, failures[-1])
                continue
            logger.info("%s: restored %s %s", self._label, pm.name, pm.version)
        book.restoring = {}
        self._persist()
        if failures and not resume:
            # forget the processed generation so the retained command is applied again
            self.generation = -1
            self.last_error = failures[0]
            self.failed = True
        if resume:
            self._resume = resume
        self.status = settled_status(serving=len(self._models) > 0, failed=self.failed)

    def _guard_boot_loop(self, restoring: dict[str, int]) -> list[str]:
        """A committed version the agent died loading at ``max_crashes`` starts in a row is
        marked bad and the pointer goes back to the previous version; then the starts in a
        row are counted (persisted) before anything is loaded. Why versions were dropped."""
        book, failures = self.book, []
        for name, pm in list(book.pointer.items()):
            starts = restoring.get(pm.bundle_digest, 0)
            if starts < self._max_crashes:
                continue
            reason = f"the agent died {starts} times in a row while loading it at start"
            book.bad[pm.bundle_digest] = BadBundle(
                bundle_digest=pm.bundle_digest, generation=self.accepted_generation, reason=reason
            )
            previous = book.previous.pop(name, None)
            if previous is not None:
                book.pointer[name] = previous
            else:
                book.pointer.pop(name)
            back = f"; back to {previous.version}" if previous is not None else ""
            failures.append(f"{pm.name} {pm.version}: {reason}{back}")
            logger.error("%s: %s", self._label, failures[-1])
        book.restoring = {
            pm.bundle_digest: restoring.get(pm.bundle_digest, 0) + 1 for pm in book.pointer.values()
        }
        if book.restoring:
            self._persist()  # before loading: a start that dies while loading is counted
        return failures

    def _count_crashes(self, *, crashed: bool) -> dict[str, State]:
        """Count a crash (unless the agent ``crashed`` not: it was stopped cleanly) for
        every assignment left in flight; where each one resumes."""
        book = self.book
        resume: dict[str, State] = {}
        unfinished = book.journal_generation > self.generation
        for name, entry in list(book.journal.items()):
            if is_terminal(entry.state):
                if unfinished:  # settled, but maybe not reported: report it (again)
                    resume[name] = entry.state
                continue
            crashes = entry.crashes + (1 if crashed else 0)
            book.journal[name] = entry.model_copy(update={"crashes": crashes})
            a = entry.assignment
            logger.warning(
                "%s: %s %s was left in %s by a %s; resuming (crashes so far: %d)",
                self._label,
                a.name,
                a.version,
                entry.state,
                "crash" if crashed else "clean stop",
                crashes,
            )
            if crashes >= self._max_crashes:
                book.bad[a.bundle_digest] = BadBundle(
                    bundle_digest=a.bundle_digest,
                    generation=book.journal_generation,
                    reason=f"the agent died {crashes} times while deploying it "
                    f"(last in {entry.state})",
                )
                pointed = book.pointer.get(name)
                if pointed is not None and pointed.bundle_digest == a.bundle_digest:
                    previous = book.previous.pop(name, None)
                    if previous is not None:
                        book.pointer[name] = previous
                    else:
                        book.pointer.pop(name)
                resume[name] = State.IDLE  # the bad mark turns it into a failure at once
            else:
                resume[name] = resume_state(entry.state)
        if resume:
            self._persist()  # before loading anything
        return resume

    def _resume_interrupted(self) -> None:
        """On the worker, first: finish the generation the agent was interrupted in."""
        resume, self._resume = self._resume, None
        if not resume:
            return
        generation = self.book.journal_generation
        assignments = [e.assignment for e in self.book.journal.values()]
        logger.info("%s: resuming generation %s after a restart", self._label, generation)
        self._apply(generation, assignments, None, resume=resume)
