"""The deployment worker's inbox: the newest pending command, trust document and retry.

``submit_command`` and ``submit_trust`` (paho's network thread) keep only the newest
pending deployment command (a ``SignedEnvelope``, verified later by the worker) and the
newest pending trust document (raw bytes); a pending trust document is handed out first,
so a command is evaluated with the newest trust. A command that failed transiently is
armed with ``retry_later``: ``next`` hands it out again once its backoff delay has
passed, unless something pending comes first (a newer command supersedes the retry; the
same one re-delivered is evaluated at once).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from agent.deployment.retry import Backoff
from protocol import SignedEnvelope

logger = logging.getLogger(__name__)


class WorkKind(StrEnum):
    TRUST = "trust"
    COMMAND = "command"


@dataclass(frozen=True)
class Work:
    kind: WorkKind
    envelope: SignedEnvelope | None = None
    raw: bytes = b""
    retry: bool = False


def envelope_key(envelope: SignedEnvelope) -> str:
    """Identifies a command's content (its payload), to tell a retry of it from another."""
    return hashlib.sha256(envelope.payload.encode("ascii", "replace")).hexdigest()


class Inbox:
    def __init__(self, label: str, *, retry_initial_s: float, retry_max_s: float) -> None:
        self._label = label
        self._cond = threading.Condition()
        self._command: SignedEnvelope | None = None
        self._trust: bytes | None = None
        self._retry: SignedEnvelope | None = None
        self._retry_at = 0.0
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._stopping = False

    def submit_command(self, envelope: SignedEnvelope) -> None:
        """Record a deployment command (the newest one wins); never blocks long."""
        with self._cond:
            self._command = envelope
            self._cond.notify_all()

    def resubmit_command(self, envelope: SignedEnvelope) -> None:
        """Evaluate ``envelope`` again (after a trust update) unless a command that
        arrived meanwhile is waiting: that one is newer and must not be replaced."""
        with self._cond:
            if self._command is None:
                self._command = envelope
                self._cond.notify_all()

    def submit_trust(self, raw: bytes) -> None:
        """Record a trust document from the trust topic (the newest one wins)."""
        with self._cond:
            self._trust = raw
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def has_other_command(self, envelope: SignedEnvelope | None) -> bool:
        """Whether a command other than ``envelope`` (another content, not its
        re-delivery) is waiting: the work in progress may stop early for it."""
        with self._cond:
            pending = self._command
        if pending is None:
            return False
        return envelope is None or envelope_key(pending) != envelope_key(envelope)

    def next(self) -> Work | None:
        """Block until work is pending or a retry is due; None when stopping."""
        with self._cond:
            while not self._stopping and self._trust is None and self._command is None:
                if self._retry is None:
                    self._cond.wait()
                    continue
                wait = self._retry_at - time.monotonic()
                if wait <= 0:
                    logger.info("%s: retrying the last deployment command", self._label)
                    return Work(WorkKind.COMMAND, envelope=self._retry, retry=True)
                self._cond.wait(wait)
            if self._stopping:
                return None
            if self._trust is not None:
                raw, self._trust = self._trust, None
                return Work(WorkKind.TRUST, raw=raw)
            envelope, self._command = self._command, None
            return Work(WorkKind.COMMAND, envelope=envelope)

    def retry_later(self, envelope: SignedEnvelope) -> float:
        """Arm the retry of ``envelope``; the delay, which doubles for the same command."""
        with self._cond:
            if self._retry is None or envelope_key(self._retry) != envelope_key(envelope):
                self._backoff.reset()  # another command starts from the shortest delay
            delay = self._backoff.next()
            self._retry, self._retry_at = envelope, time.monotonic() + delay
            return delay

    def cancel_retry(self) -> None:
        with self._cond:
            self._retry = None
            self._backoff.reset()
