"""One thread that drives the MQTT connections of many devices (a light simulated fleet).

paho's ``loop_start`` gives every client a network thread of its own that waits in
``select()``, which cannot watch a file descriptor above 1023: past a few hundred devices
in one process those clients fail to connect, over and over, without a word. Here one
asyncio event loop (epoll on Linux: no such limit) drives any number of paho clients
through paho's external-loop API (``loop_read`` / ``loop_write`` / ``loop_misc`` and the
``on_socket_*`` callbacks, as in paho's own asyncio example):

- ``attach(client, tick)``: the client's socket is watched for reading from the moment
  paho opens it, for writing while paho has bytes queued; ``loop_misc`` (keepalive
  pings, a broker gone silent) and ``tick`` run once a second;
- ``call_soon`` / ``call_later`` / ``call``: run something on the loop from any thread
  (every call into a paho client it drives must happen there);
- ``submit``: blocking work (verification, downloads, enrollment) on a small shared pool
  of threads, never one per device.

A callback that raises is logged (one line with its traceback at debug) and the loop
goes on: one device's bug must not stop the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How often ``loop_misc`` and each client's tick run.
MISC_INTERVAL_S = 1.0
#: Threads for blocking work (downloads, verification, enrollment), shared by all devices.
DEFAULT_WORKERS = 8


class NetworkLoop:
    """An event loop thread for paho clients, plus a worker pool for blocking work."""

    def __init__(self, *, name: str = "mqtt-net", workers: int = DEFAULT_WORKERS) -> None:
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._on_error)
        self._thread: threading.Thread | None = None
        self._ticks: dict[mqtt.Client, Callable[[], object] | None] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"{name}-work"
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(started.set)
            self._loop.call_later(MISC_INTERVAL_S, self._misc)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        started.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (attached clients should have disconnected) and the pool."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._thread = None
        if not self._loop.is_running():
            self._loop.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_loop(self) -> bool:
        """Whether the caller runs on the loop thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    # -- running things --------------------------------------------------------------------

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop, soon (from any thread)."""
        self._loop.call_soon_threadsafe(fn, *args)

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop after ``delay`` seconds (from any thread)."""
        if self.in_loop():
            self._loop.call_later(delay, fn, *args)
        else:
            self._loop.call_soon_threadsafe(self._loop.call_later, delay, fn, *args)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Run ``fn(*args)`` on the loop and return its result (from another thread)."""
        if self.in_loop():
            return fn(*args)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run blocking ``fn(*args)`` on the shared worker pool."""
        return self._pool.submit(fn, *args)

    # -- paho clients ----------------------------------------------------------------------

    def attach(self, client: mqtt.Client, tick: Callable[[], object] | None = None) -> None:
        """Drive ``client`` from this loop; call ``tick`` once a second (on the loop).
        Call before the client's first connection attempt."""
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        self._ticks[client] = tick

    def detach(self, client: mqtt.Client) -> None:
        """Stop driving ``client`` (on the loop)."""
        self._ticks.pop(client, None)

    def _socket_open(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._loop.add_reader(sock, self._guard, client.loop_read)

    def _socket_close(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _register_write(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._loop.add_writer(sock, self._guard, client.loop_write)

    def _unregister_write(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _misc(self) -> None:
        for client, tick in list(self._ticks.items()):
            if client.socket() is not None:
                self._guard(client.loop_misc)
            if tick is not None:
                self._guard(tick)
        self._loop.call_later(MISC_INTERVAL_S, self._misc)

    def _guard(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:  # one device's bug must not stop the others
            logger.warning("%s: %s failed: %s: %s", self._name, fn, type(exc).__name__, exc)
            logger.debug("traceback", exc_info=True)

    def _on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        what = f"{type(exc).__name__}: {exc}" if exc is not None else context.get("message")
        logger.warning("%s: callback failed: %s", self._name, what)
        if exc is not None:
            logger.debug("traceback", exc_info=exc)
