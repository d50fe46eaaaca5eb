"""Telling an operator that another MQTT client uses this control plane's client id.

Two clients with one id take the session from each other in turn: each connection ends
within seconds of being made. ``SessionWatch`` counts connections that end sooner than
``SHORT_SESSION_S`` after they were made, and says why to suspect the id: the broker said
the session was taken over (MQTT 5 reason 0x8E), or ``SHORT_SESSIONS_WARN`` such drops
in a row (then every 20th).
"""

from __future__ import annotations

import time
from typing import Final

#: A connection that ends sooner than this after it was made counts as "dropped at once".
SHORT_SESSION_S: Final = 10.0
#: After this many such drops in a row, warn that the client id may be taken.
SHORT_SESSIONS_WARN: Final = 3
#: MQTT 5 reason code 0x8E: the broker gave our session to another client with our id.
SESSION_TAKEN_OVER: Final = 0x8E
CLIENT_ID_HINT: Final = (
    "another MQTT client is probably using client id %r; give each control plane its own "
    "EDGEFLEET_MQTT_CLIENT_ID"
)


class SessionWatch:
    """The connections of one client, as they are made and lost."""

    def __init__(self) -> None:
        self._connected_at: float | None = None
        self._short = 0

    def connected(self) -> None:
        self._connected_at = time.monotonic()

    def lost(self, reason_code: int) -> str | None:
        """Why the client id may be taken, if this loss makes it likely (else None)."""
        connected_at, self._connected_at = self._connected_at, None
        if connected_at is None:
            return None
        self._short = self._short + 1 if time.monotonic() - connected_at < SHORT_SESSION_S else 0
        streak = self._short
        if reason_code == SESSION_TAKEN_OVER:
            return "the broker says the session was taken over"
        if streak == SHORT_SESSIONS_WARN or (streak and streak % 20 == 0):
            return (
                f"the connection dropped {streak} times in a row within "
                f"{SHORT_SESSION_S:.0f}s of connecting"
            )
        return None
