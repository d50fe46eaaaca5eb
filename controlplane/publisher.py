"""The seam between the control plane and MQTT: who publishes commands and trust documents.

Routes and the ingester call a :class:`DesiredStatePublisher`; the MQTT bridge is the
real one, :class:`MemoryPublisher` the in-memory fake for unit tests. A publisher never
raises: what it cannot send now is republished from the database when the link comes
back (everything is retained, so only the latest message of a topic matters).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SignedCommand:
    """A device's signed deployment command: ``raw`` is what goes on ``.../desired``."""

    device_id: str
    generation: int
    trust_version: int
    expires_at: datetime
    #: ``protocol.encode(SignedEnvelope)`` of a ``DesiredState``, signed by our key.
    raw: bytes


class DesiredStatePublisher(Protocol):
    def publish_desired(self, command: SignedCommand) -> bool:
        """Hand ``command`` to the broker (retained, QoS 1); False if it must wait."""
        ...

    def publish_trust(self, raw: bytes) -> bool:
        """Publish the latest trust envelope on ``TRUST_TOPIC`` (retained, QoS 1)."""
        ...

    def clear_desired(self, device_id: str) -> bool:
        """Clear the device's retained command (a revoked device gets none)."""
        ...


class MemoryPublisher:
    """Records what would have been published; thread-safe."""

    def __init__(self, *, connected: bool = True) -> None:
        self.connected = connected
        self.published: list[SignedCommand] = []
        self.trust: list[bytes] = []
        self.cleared: list[str] = []
        self._lock = threading.Lock()

    def publish_desired(self, command: SignedCommand) -> bool:
        with self._lock:
            if self.connected:
                self.published.append(command)
        return self.connected

    def publish_trust(self, raw: bytes) -> bool:
        with self._lock:
            if self.connected:
                self.trust.append(raw)
        return self.connected

    def clear_desired(self, device_id: str) -> bool:
        with self._lock:
            if self.connected:
                self.cleared.append(device_id)
                self.published = [c for c in self.published if c.device_id != device_id]
        return self.connected

    def latest(self, device_id: str) -> SignedCommand | None:
        with self._lock:
            commands = [c for c in self.published if c.device_id == device_id]
        return commands[-1] if commands else None
