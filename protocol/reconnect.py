"""How both ends of the MQTT link come back after a broker outage: capped exponential
backoff with full jitter.

The agents and the control plane retry a lost broker the same way. The n-th wait
after a connection was lost (n = 0, 1, ...) is drawn uniformly from
``[0, min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2**n)]`` ("full jitter"); a successful
connection (CONNACK accepted) starts over at n = 0.

* **Recovery within 5 s.** Whatever the outage lasted, a client never waits longer than
  ``RECONNECT_CAP_S`` (3 s) between two attempts, so it is back within 3 s of the broker
  accepting connections again, plus one connection set-up; its first report follows at
  once (the agent's full state report is sent from ``on_connect``).
* **No stampede.** The waits are spread evenly, not synchronised: 1,000 devices that
  lost the same broker at the same instant come back spread over ``RECONNECT_CAP_S``
  (about 330 connections a second), not in the same millisecond. paho's own
  ``reconnect_delay_set(min, max)`` doubles a fixed delay with no jitter (every client
  of one outage retries on the same schedule), and its steps (1, 2, 4, ... 30 s) put a
  recovered broker up to 30 s away.

paho 2.x runs its reconnect loop in ``loop_forever``: after a failed attempt it calls
``on_connect_fail``, after a lost connection ``on_disconnect``, and then
``_reconnect_wait``, which sleeps the delay ``reconnect_delay_set`` configured. So each
side draws the next wait in those two callbacks and hands it to paho with
:func:`set_next_wait` (``min = max = wait``); paho stays the one owner of reconnection.
"""

from __future__ import annotations

import random
from typing import Any, Final, Protocol

#: The first wait is drawn from [0, RECONNECT_BASE_S]; each later one from twice as long.
RECONNECT_BASE_S: Final = 0.5
#: No wait is longer than this: the 5 s recovery budget minus a connection and a report.
RECONNECT_CAP_S: Final = 3.0


class Backoff:
    """Full-jitter capped exponential backoff: ``next()`` the next wait, ``reset()`` on
    success. Not thread-safe (each MQTT client calls it from its network thread)."""

    def __init__(
        self,
        base: float = RECONNECT_BASE_S,
        cap: float = RECONNECT_CAP_S,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()
        self._attempt = 0
        #: connection attempts failed in a row (``failed``); 0 after ``reset``
        self.failures = 0

    @property
    def ceiling(self) -> float:
        """The longest the next wait may be."""
        return min(self.cap, self.base * 2 ** min(self._attempt, 62))

    def next(self) -> float:
        """The next wait in seconds, uniformly in ``[0, ceiling]``."""
        wait = self._rng.uniform(0.0, self.ceiling)
        self._attempt += 1
        return wait

    def schedule(self, client: _Reconnecting) -> float:
        """Draw the next wait and hand it to paho (``set_next_wait``); the wait."""
        wait = self.next()
        set_next_wait(client, wait)
        return wait

    def failed(self, client: _Reconnecting) -> float:
        """An attempt failed (``on_connect_fail``): count it and ``schedule`` the next."""
        self.failures += 1
        return self.schedule(client)

    @property
    def loud(self) -> bool:
        """Whether the latest failure is worth a warning: the first of a streak and every
        tenth (the others go to info, so an outage does not flood the log)."""
        return self.failures == 1 or self.failures % 10 == 0

    def reset(self) -> None:
        """A connection was accepted: start over."""
        self._attempt = 0
        self.failures = 0


class _Reconnecting(Protocol):
    def reconnect_delay_set(self, min_delay: int = ..., max_delay: int = ...) -> None: ...


def set_next_wait(client: _Reconnecting, seconds: float) -> None:
    """Make paho's next reconnect wait exactly ``seconds``.

    paho annotates the delays as ``int`` but only doubles, caps and sleeps them, so a
    fraction of a second is kept; ``min = max`` makes the doubling a no-op, and setting
    them resets paho's own step, so its next ``_reconnect_wait`` sleeps ``seconds``.
    """
    wait: Any = max(0.0, seconds)
    client.reconnect_delay_set(min_delay=wait, max_delay=wait)
