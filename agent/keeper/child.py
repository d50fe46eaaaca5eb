"""``Keeper`` in a child process: started when an operation needs it, closed after
``idle_s`` without one (``agent.keeper``).

One operation at a time (a lock): each is a request line and an answer line over the
child's pipes. A child that cannot start, or dies or answers garbage mid-operation, is
killed and the operation raises ``KeeperUnavailable`` (transient: nothing was decided);
the next operation starts a fresh child. The child's stderr is the agent's.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.deployment.commands import Command, command_of
from agent.errors import KeeperUnavailable
from agent.keeper.api import KeeperSettings
from agent.keeper.wire import (
    b64,
    error_of,
    identity_of,
    identity_to_json,
    line,
    manifest_of,
    unb64,
)
from hw_profiles.runtimes import child_env

if TYPE_CHECKING:
    from agent.identity.model import Identity
    from model_store.statement import SignedManifest
    from protocol import SignedEnvelope

logger = logging.getLogger(__name__)

#: how long an idle child is kept (an operation rarely comes alone: a deployment
#: verifies its command, then its signature, then the staged bundle)
IDLE_S = 10.0
#: how long a closing child may take to exit before it is killed
EXIT_S = 5.0


class ChildKeeper:
    """``Keeper`` whose operations run in ``python -m agent.keeper``."""

    def __init__(self, settings: KeeperSettings, *, idle_s: float = IDLE_S) -> None:
        self.settings = settings
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._timer: threading.Timer | None = None
        self._last = 0.0
        self._trust_version = 0
        #: refused by earlier children, and by the current one
        self._refused_before = self._refused_now = 0
        #: children started (information: ``edge-agent`` status and tests)
        self.started = 0
        self._closed = False

    # -- the Keeper interface --------------------------------------------------------------

    @property
    def trust_version(self) -> int:
        return self._trust_version

    @property
    def refused_trust(self) -> int:
        return self._refused_before + self._refused_now

    def open_trust(self) -> None:
        self._call("open_trust")

    def ensure_trust(self) -> int:
        return int(self._call("ensure_trust"))

    def offer_trust(self, raw: bytes) -> bool:
        return bool(self._call("offer_trust", raw=b64(raw)))

    def verify_command(self, envelope: SignedEnvelope, *, device_id: str, now: datetime) -> Command:
        result = self._call(
            "verify_command",
            envelope=b64(envelope.model_dump_json().encode("utf-8")),
            device_id=device_id,
            now=now.isoformat(),
        )
        return command_of(unb64(result["payload"]), envelope, device_id=device_id)

    def verify_signature(self, signature: bytes, *, fresh: bool) -> SignedManifest:
        return manifest_of(self._call("verify_signature", signature=b64(signature), fresh=fresh))

    def verify_bundle(self, bundle_dir: Path) -> SignedManifest:
        return manifest_of(self._call("verify_bundle", bundle_dir=str(bundle_dir)))

    def load_identity(self) -> Identity | None:
        return identity_of(self._call("load_identity"))

    def enroll(self, token: str) -> Identity:
        identity = identity_of(self._call("enroll", token=token))
        assert identity is not None
        return identity

    def renew(self, identity: Identity) -> Identity:
        renewed = identity_of(self._call("renew", identity=identity_to_json(identity)))
        assert renewed is not None
        return renewed

    def seal_signed(self, stream: str, seq: int, body: bytes) -> bytes:
        return unb64(self._call("seal_signed", stream=stream, seq=seq, body=b64(body)))

    def warm(self) -> None:
        """Start the child now, before any operation needs it: its start (imports, the
        trust document opened) overlaps what the caller does next (the agent's host
        probe). Closed after ``idle_s`` if no operation comes. A child that cannot start
        is logged here and reported by the first operation, which tries again."""
        with self._lock:
            if self._closed:
                return
            with self._busy():
                try:
                    self._ensure()
                except KeeperUnavailable as exc:
                    logger.warning("%s: %s", self.settings.device_id, exc)
                except Exception as exc:  # its settings could not be written: it died at once
                    self._end()
                    logger.warning(
                        "%s: the keeper process failed at its start: %s",
                        self.settings.device_id,
                        exc,
                    )

    def close(self) -> None:
        """End the child (killed if an operation is in progress: it raises
        ``KeeperUnavailable``); every later operation raises ``KeeperUnavailable``."""
        self._closed = True
        if not self._lock.acquire(blocking=False):  # an operation is in progress:
            proc = self._proc  # it ends with KeeperUnavailable
            if proc is not None and proc.poll() is None:
                proc.kill()
            self._lock.acquire()
        try:
            self._stop_timer()
            self._end()
        finally:
            self._lock.release()

    def close_child(self) -> None:
        """End the child now, as ``idle_s`` without an operation does (the next one
        starts another)."""
        with self._lock:
            self._stop_timer()
            self._end()

    @property
    def running(self) -> bool:
        """Whether a child is up now."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    # -- the child -------------------------------------------------------------------------

    def _call(self, op: str, **args: object) -> Any:
        with self._lock:
            if self._closed:
                raise KeeperUnavailable(f"cannot {op}: the keeper is closed (the agent stops)")
            with self._busy():
                reply = self._exchange(op, args)
            # versions only go up; a child that has not opened its trust says 0
            self._trust_version = max(self._trust_version, int(reply.get("trust_version", 0)))
            self._refused_now = int(reply.get("refused", self._refused_now))
            if "error" in reply:
                raise error_of(reply["error"], reply.get("message", ""))
            return reply.get("result")

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """Under ``_lock``: the idle timer stopped while the child is used, then armed
        again from now (the child closes ``idle_s`` after its last use)."""
        self._stop_timer()
        try:
            yield
        finally:
            self._last = time.monotonic()
            self._arm_timer()

    def _exchange(self, op: str, args: dict[str, object]) -> dict[str, Any]:
        """One request, one answer; any failure of the child ends it (KeeperUnavailable)."""
        try:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(line({"op": op, "args": args}))
            proc.stdin.flush()
            raw = proc.stdout.readline()
            if not raw:
                raise KeeperUnavailable(self._died(f"during {op}"))
            reply = json.loads(raw)
            if not isinstance(reply, dict):
                raise ValueError("an answer that is not a JSON object")
            return reply
        except KeeperUnavailable:
            self._end()
            raise
        except Exception as exc:  # a broken pipe, garbage: nothing was decided
            self._end()
            raise KeeperUnavailable(f"the keeper process failed during {op}: {exc}") from exc

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._end()
        try:
            proc = subprocess.Popen(
                # -P: not the working directory (the data dir, writable) on its path
                [sys.executable, "-P", "-m", "agent.keeper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
                env=child_env(),
            )
        except OSError as exc:
            raise KeeperUnavailable(f"cannot start the keeper process: {exc}") from exc
        self._proc = proc
        self.started += 1
        assert proc.stdin is not None
        proc.stdin.write(line({**self.settings.to_json(), "trust_floor": self._trust_version}))
        proc.stdin.flush()
        logger.debug("%s: keeper process %d started", self.settings.device_id, proc.pid)
        return proc

    def _died(self, when: str) -> str:
        proc = self._proc
        try:
            code = proc.wait(EXIT_S) if proc is not None else None
        except subprocess.TimeoutExpired:  # its answers closed, itself still there
            code = None
        return f"the keeper process exited {when} (exit code {code})"

    def _end(self) -> None:
        """Close the child (if any): stdin closed, then killed if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._refused_before += self._refused_now
        self._refused_now = 0
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(EXIT_S)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def _arm_timer(self) -> None:
        self._timer = threading.Timer(self.idle_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        with self._lock:
            if time.monotonic() - self._last >= self.idle_s * 0.99:
                self._timer = None
                self._end()
