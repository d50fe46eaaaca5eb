"""systemd integration without libsystemd: sd_notify(3) by hand, and a watchdog that
pings only while the process is healthy.

Protocol (sd_notify(3)). ``$NOTIFY_SOCKET`` names an ``AF_UNIX`` / ``SOCK_DGRAM``
socket: an absolute path, or an abstract-namespace name when it starts with ``@`` (the
``@`` stands for the leading NUL byte). One datagram carries newline-separated
assignments: ``READY=1``, ``STATUS=<one line>``, ``WATCHDOG=1``, ``STOPPING=1``,
``MAINPID=<pid>``. systemd reads the sender's pid from the socket credentials, so with
``NotifyAccess=main`` only the main process may send, which is why everything here is
sent from the agent process itself. ``Notifier`` is a no-op when ``$NOTIFY_SOCKET`` is
unset (a shell, a container, a test), refuses other address kinds (relative paths,
``vsock:``) with one warning, and never raises: a send that fails is logged once per
outage (warning), then at debug until a send succeeds again.

Watchdog (sd_watchdog_enabled(3), systemd.service(5) ``WatchdogSec=``). systemd passes
``$WATCHDOG_USEC`` and, usually, ``$WATCHDOG_PID``; the pings are expected from this
process only if ``$WATCHDOG_PID`` is unset or is our pid (a child that inherited the
variables must not ping for us). ``Supervisor`` pings at half the interval, as the man
page recommends, from its own thread, but only while ``problem()`` finds nothing:

- the main loop (``beat()``, called by the CLI's signal-wait loop every second) ran
  within ``stall_s``: a wedged main thread could no longer act on SIGTERM;
- every health check passes (a check returns ``None`` or a one-line problem; one that
  raises counts as a problem). The agent's checks (``agent.cli``): the deployment worker
  thread is alive, and the local inference API answers ``GET /v2/health/live``, which
  proves its thread, event loop and routing all work. The MQTT connection is *not* a
  check: an offline box keeps serving and is healthy.

An interpreter that deadlocks, or a C extension that holds the GIL, stops this thread
too, so it stops pinging as well. When pings stop, systemd kills the service after
``WatchdogSec`` (SIGABRT by default) and ``Restart=`` brings it back; the first missed
ping is logged with its reason and shown in ``STATUS=``. After ``stopping()`` the
health checks no longer apply (the API is draining on purpose): the pings go on until
``close()``, and ``TimeoutStopSec=`` bounds the shutdown instead.

``STATUS=`` is refreshed from the ``status`` callable every ``status_interval_s`` (sent
only when the text changes), so ``systemctl status`` shows what is served.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]

STATUS_INTERVAL_S = 5.0
STALL_S = 10.0


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Notifier:
    """Sends sd_notify datagrams to one socket; a no-op without an address."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._target: bytes | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failing = False
        if self.address is None:
            return
        if self.address.startswith("@"):
            self._target = b"\0" + os.fsencode(self.address[1:])
        elif self.address.startswith("/"):
            self._target = os.fsencode(self.address)
        else:
            logger.warning(
                "NOTIFY_SOCKET=%s is neither an absolute path nor an abstract socket (@name); "
                "not notifying systemd",
                self.address,
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._target is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True if it was handed to the kernel."""
        if self._target is None:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.sendto(payload, self._target)
            except OSError as exc:
                if not self._failing:
                    logger.warning(
                        "cannot notify systemd on %s: %s (not logged again until it works)",
                        self.address,
                        exc.strerror or exc,
                    )
                else:
                    logger.debug("cannot notify systemd on %s: %s", self.address, exc)
                self._failing = True
                return False
            if self._failing:
                logger.info("systemd notify socket %s works again", self.address)
                self._failing = False
            return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *self._status_lines(status))

    def status(self, text: str) -> bool:
        return self.send(*self._status_lines(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *self._status_lines(status))

    def mainpid(self, pid: int) -> bool:
        return self.send(f"MAINPID={pid}")

    @staticmethod
    def _status_lines(text: str | None) -> list[str]:
        return [f"STATUS={_one_line(text)}"] if text else []

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(
    environ: Mapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """Seconds systemd waits between pings, or None if it expects none from us."""
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "").strip()
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID", "").strip()
    try:
        usec = int(raw)
        owner_pid = int(owner) if owner else None
    except ValueError:
        logger.warning("ignoring WATCHDOG_USEC=%r WATCHDOG_PID=%r: not integers", raw, owner)
        return None
    if owner_pid is not None and owner_pid != (os.getpid() if pid is None else pid):
        logger.debug("WATCHDOG_PID=%d is another process; not pinging", owner_pid)
        return None
    return usec / 1e6 if usec > 0 else None


class Supervisor:
    """READY / STATUS / WATCHDOG / STOPPING for this process (see the module docstring)."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        watchdog_s: float | None = None,
        checks: Sequence[HealthCheck] = (),
        status: Callable[[], str] | None = None,
        status_interval_s: float = STATUS_INTERVAL_S,
        stall_s: float = STALL_S,
    ) -> None:
        self.notifier = notifier
        self.watchdog_s = watchdog_s if notifier.enabled else None
        self._checks = tuple(checks)
        self._status = status
        self._status_interval_s = status_interval_s
        self._stall_s = stall_s
        self._last_beat: float | None = None
        self._last_status: str | None = None
        self._problem: str | None = None
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ping_interval_s(self) -> float | None:
        """Half the watchdog interval (sd_watchdog_enabled(3)), or None without one."""
        return self.watchdog_s / 2 if self.watchdog_s is not None else None

    def beat(self) -> None:
        """The main loop is alive (call it from there, at least every ``stall_s``)."""
        self._last_beat = time.monotonic()

    def problem(self) -> str | None:
        """Why the process is not healthy now, or None."""
        if self._last_beat is not None and time.monotonic() - self._last_beat > self._stall_s:
            return f"main loop has not run for more than {self._stall_s:g}s"
        for check in self._checks:
            try:
                found = check()
            except Exception as exc:  # a failing check must not kill the watchdog thread
                found = f"health check {getattr(check, '__name__', check)!r} failed: {exc}"
            if found:
                return _one_line(found)
        return None

    def ready(self) -> None:
        """READY=1 (with the first STATUS=), then start pinging / refreshing the status."""
        if not self.notifier.enabled:
            return
        self._last_status = self._status_text()
        if self.notifier.ready(self._last_status):
            logger.info(
                "notified systemd: ready (watchdog %s)",
                f"{self.watchdog_s:g}s" if self.watchdog_s is not None else "off",
            )
        self.beat()
        if self.watchdog_s is None and self._status is None:
            return
        self._thread = threading.Thread(target=self._run, name="sd-notify", daemon=True)
        self._thread.start()

    def stopping(self, status: str = "stopping: draining in-flight requests") -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.notifier.stopping(status)

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.notifier.close()

    # -- thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        ping = self.ping_interval_s
        now = time.monotonic()
        next_ping = now if ping is not None else float("inf")
        next_status = now + self._status_interval_s if self._status else float("inf")
        while not self._closed.wait(max(0.0, min(next_ping, next_status) - time.monotonic())):
            try:
                now = time.monotonic()
                if ping is not None and now >= next_ping:
                    self._watchdog_tick()
                    next_ping = max(next_ping + ping, time.monotonic())
                if now >= next_status:
                    self._refresh_status()
                    next_status = now + self._status_interval_s
            except Exception:  # never let a bug end the pings silently
                logger.exception("systemd notification thread")

    def _watchdog_tick(self) -> None:
        if self._stopping.is_set():
            self.notifier.watchdog()
            return
        problem = self.problem()
        if problem is None:
            if self._problem is not None:
                logger.info("healthy again: pinging the systemd watchdog")
                self._problem = None
                self._refresh_status()
            self.notifier.watchdog()
        elif problem != self._problem:
            logger.warning("not pinging the systemd watchdog: %s", problem)
            self._problem = problem
            self._refresh_status()

    def _refresh_status(self) -> None:
        if self._stopping.is_set():
            return
        text = self._status_text()
        if self._problem is not None:
            text = f"unhealthy: {self._problem}"
        if text and text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    def _status_text(self) -> str:
        if self._status is None:
            return ""
        try:
            return _one_line(self._status())
        except Exception as exc:
            logger.debug("status line failed: %s", exc)
            return self._last_status or ""
