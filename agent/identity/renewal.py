"""Renews the device certificate in the background, well before it expires.

At half of the certificate's lifetime the agent asks for a fresh one (a CSR signed by its
enrolled key); a failure is logged and retried every ``RETRY_S`` (or sooner, at a tenth
of what is left). A new certificate is used from the next broker connection on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agent.errors import AgentError
from agent.identity.model import Identity

#: how far back a device certificate's ``not_before`` is dated, for clock skew
#: (``model_store.device_certs.BACKDATE``, which imports ``cryptography``; a test pins both)
BACKDATE = timedelta(minutes=5)

logger = logging.getLogger(__name__)

RETRY_S = 60.0
MIN_WAIT_S = 1.0


def renewal_due(identity: Identity) -> datetime:
    """When ``identity``'s certificate should be renewed: at half its lifetime (counted
    from when it was issued: ``not_before`` is back-dated by ``BACKDATE`` for skew)."""
    lifetime = identity.not_after - identity.not_before - BACKDATE
    if lifetime <= timedelta(0):
        lifetime = identity.not_after - identity.not_before
    return identity.not_after - lifetime / 2


class RenewalLoop:
    """A daemon thread that keeps the identity's certificate fresh."""

    def __init__(
        self,
        identity: Identity,
        *,
        renew: Callable[[Identity], Identity],
        device_id: str,
        on_renewed: Callable[[], None] | None = None,
    ) -> None:
        """``renew``: a fresh certificate for ``identity`` (the keeper's ``renew``)."""
        self.identity = identity
        self._on_renewed = on_renewed
        self.renewals = 0
        self._renew = renew
        self._device_id = device_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"renew-{device_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _wait_s(self, now: datetime) -> float:
        due = renewal_due(self.identity)
        return max((due - now).total_seconds(), 0.0)

    def _run(self) -> None:
        while not self._stop.wait(max(self._wait_s(datetime.now(UTC)), MIN_WAIT_S)):
            try:
                self.identity = self._renew(self.identity)
                self.renewals += 1
                if self._on_renewed is not None:
                    self._on_renewed()
            except AgentError as exc:
                left = (self.identity.not_after - datetime.now(UTC)).total_seconds()
                retry = min(RETRY_S, max(left / 10, MIN_WAIT_S))
                logger.warning(
                    "%s: certificate renewal failed (%s); retrying in %.0fs",
                    self._device_id,
                    exc,
                    retry,
                )
                if self._stop.wait(retry):
                    return
