"""An embedded MQTT 3.1.1 broker (amqtt) for a one-box set-up: ``--embedded-broker``.

It runs in its own thread with its own asyncio loop, listens on loopback only, accepts
anonymous clients, keeps retained messages (in memory) and delivers wills; no websocket
listener and no ``$SYS`` topics. For a fleet, run Mosquitto (MQTT 5, ACLs, persistence).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from controlplane.errors import ConfigError

logger = logging.getLogger(__name__)


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt 0.12 configuration: one TCP listener, anonymous auth, no sys/logging plugins."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "timeout_disconnect_delay": 0,
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """``start()`` returns once the broker listens (amqtt's start awaits the bound server)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        for name in ("amqtt", "transitions"):  # they log every connection/state at INFO
            noisy = logging.getLogger(name)
            if noisy.level == logging.NOTSET:
                noisy.setLevel(logging.WARNING)
        _check_port_free(self.host, self.port)  # before amqtt, which logs a traceback
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ConfigError(f"embedded MQTT broker did not start within {timeout:.0f}s")
        if self._error is not None:
            raise ConfigError(
                f"embedded MQTT broker cannot listen on {self.host}:{self.port}: "
                f"{_root_cause(self._error)}"
            ) from self._error
        logger.info("embedded MQTT broker listening on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or not loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            future.result(timeout)
        except Exception as exc:  # shutting down: report, don't raise
            logger.warning("embedded MQTT broker shutdown: %s", _root_cause(exc))
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        logger.info("embedded MQTT broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_broker())
        except BaseException as exc:  # reported to start() by _error
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start_broker(self) -> None:
        from amqtt.broker import Broker  # heavy import, only when the broker is wanted

        self._broker = Broker(broker_config(self.host, self.port))
        await self._broker.start()


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"embedded MQTT broker cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or exc.__class__.__name__
