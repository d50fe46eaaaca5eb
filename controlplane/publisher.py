"""The seam between the control plane and MQTT: who publishes desired states.

Routes and the ingester call a :class:`DesiredStatePublisher`; the MQTT bridge is the
real one, :class:`MemoryPublisher` the in-memory fake for unit tests. A publisher never
raises: a state it cannot send now is re-derived from the database and republished when
the link comes back (every desired state is retained, so only the latest one matters).
"""

from __future__ import annotations

import threading
from typing import Protocol

from protocol import DesiredState


class DesiredStatePublisher(Protocol):
    def publish_desired(self, state: DesiredState) -> bool:
        """Hand ``state`` to the broker (retained, QoS 1); False if it must wait for a reconnect."""
        ...


class MemoryPublisher:
    """Records what would have been published; thread-safe."""

    def __init__(self, *, connected: bool = True) -> None:
        self.connected = connected
        self.published: list[DesiredState] = []
        self._lock = threading.Lock()

    def publish_desired(self, state: DesiredState) -> bool:
        with self._lock:
            if self.connected:
                self.published.append(state)
        return self.connected

    def latest(self, device_id: str) -> DesiredState | None:
        with self._lock:
            states = [s for s in self.published if s.device_id == device_id]
        return states[-1] if states else None
