"""Start and stop the demo's child processes (control plane, simulated devices)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgectl.errors import EdgectlError, ServerError, UnreachableError

logger = logging.getLogger(__name__)


#: the ports ``free_port`` handed out in this process
_HANDED_OUT: set[int] = set()
_HANDING_OUT = threading.Lock()


def free_port() -> int:
    """A loopback TCP port nothing is bound to now, and not one this process was handed
    before: the kernel may give the same free port to two calls in a row, and the servers
    of one demo or benchmark fleet then collide (seen: the control plane's HTTP port was
    its own embedded broker's, "Address already in use")."""
    with _HANDING_OUT:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise EdgectlError("no free loopback port: the kernel keeps offering ports already taken")


def console_command(script: str, module: str) -> list[str]:
    """The installed console script next to this interpreter, else ``python -m module``."""
    found = shutil.which(script, path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", module]


class ChildProcess:
    """A child whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self, name: str, argv: list[str], log_path: Path, *, user: str | None = None
    ) -> None:
        """``user``: run it as that user, with that user's group only (needs root)."""
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        identity: dict[str, Any] = {}
        if user is not None:
            import pwd  # POSIX only, as is running as another user

            identity = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, **identity
        )

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise EdgectlError(f"{self.name} exited with code {code}; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, what: str, children: list[ChildProcess]
) -> None:
    """Poll ``predicate()`` until true; fail early with a clear line if a child died.

    A control plane that cannot be reached yet, or answers 5xx while it starts, is waited
    for; any other refusal (401: a wrong token; 404) is raised at once, not timed out on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            child.check_alive()
        try:
            if predicate():
                return
        except UnreachableError:
            pass
        except ServerError as exc:
            if exc.status_code < 500:
                raise
        time.sleep(0.25)
    raise EdgectlError(f"timed out after {timeout:.0f}s waiting for {what}")
