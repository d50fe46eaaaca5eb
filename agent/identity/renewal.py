"""Renews the device certificate in the background, well before it expires.

At half of the certificate's lifetime the agent asks for a fresh one (a CSR signed by its
enrolled key); a failure is logged and retried every ``RETRY_S`` (or sooner, at a tenth
of what is left). A new certificate is used from the next broker connection on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from agent.errors import AgentError
from agent.identity.enroll import renew
from agent.identity.files import Identity, IdentityFiles
from model_store.device_certs import BACKDATE

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
        files: IdentityFiles,
        identity: Identity,
        *,
        control_plane_url: str,
        device_id: str,
        ca_keys: Callable[[], Iterable[ec.EllipticCurvePublicKey]],
        on_renewed: Callable[[], None] | None = None,
    ) -> None:
        self.identity = identity
        self._on_renewed = on_renewed
        self.renewals = 0
        self._files = files
        self._url = control_plane_url
        self._device_id = device_id
        self._ca_keys = ca_keys
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
                self.identity = renew(
                    self._files,
                    self.identity,
                    control_plane_url=self._url,
                    device_id=self._device_id,
                    ca_keys=self._ca_keys(),
                )
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
