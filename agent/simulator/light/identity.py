"""A light simulated device's identity: enrollment, report sealing, renewal.

The agent's own code (``agent.identity``): ``open`` loads the identity from the device's
data directory or enrolls with a one-time token (a key pair made here, a CSR, a
certificate from a device CA the trust document certifies) and returns the sealer of its
reports; the certificate is renewed at half its lifetime on the loop's worker pool (a
failure is retried every ``RETRY_S``), and the sealer and link use the renewed one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from agent.errors import AgentError
from agent.identity.enroll import enroll, renew
from agent.identity.files import Identity, IdentityFiles
from agent.identity.renewal import renewal_due
from agent.identity.sealer import ReportSealer, signer_with
from agent.link.network_loop import NetworkLoop

logger = logging.getLogger(__name__)

RETRY_S = 60.0


class LightIdentity:
    def __init__(
        self,
        device_id: str,
        data_dir: Path,
        *,
        control_plane_url: str,
        network: NetworkLoop,
        ca_keys: Callable[[], Iterable[ec.EllipticCurvePublicKey]],
    ) -> None:
        self._device_id = device_id
        self._files = IdentityFiles(data_dir / "identity")
        self._url = control_plane_url
        self._network = network
        self._ca_keys = ca_keys
        self.identity: Identity | None = None
        self.sealer: ReportSealer | None = None
        self._on_renewed: Callable[[Identity], None] | None = None
        self.stopped = False

    def open(self, token: str | None) -> ReportSealer | None:
        """The identity on disk, else enrolled with ``token`` (blocking); its sealer, or
        None (with a warning) if the device is not enrolled."""
        self.identity = self._files.load()
        if self.identity is None and token is not None:
            self.identity = enroll(
                self._files,
                control_plane_url=self._url,
                device_id=self._device_id,
                token=token,
                ca_keys=self._ca_keys(),
            )
        if self.identity is None:
            logger.warning("%s: not enrolled: a control plane drops its reports", self._device_id)
            return None
        self.sealer = ReportSealer(
            self.identity,
            self._device_id,
            self._files.directory,
            signer_with(self.identity, self._device_id),
        )
        return self.sealer

    def keep_renewed(self, on_renewed: Callable[[Identity], None]) -> None:
        """Renew the certificate when due, from now on; ``on_renewed`` after each."""
        self._on_renewed = on_renewed
        if self.identity is not None:
            self._schedule(self.identity)

    def _schedule(self, identity: Identity) -> None:
        delay = max((renewal_due(identity) - datetime.now(UTC)).total_seconds(), 1.0)
        self._network.call_later(delay, self._network.submit, self._renew)

    def _renew(self) -> None:
        """On a worker."""
        if self.stopped or self.identity is None:
            return
        try:
            self.identity = renew(
                self._files,
                self.identity,
                control_plane_url=self._url,
                device_id=self._device_id,
                ca_keys=list(self._ca_keys()),
            )
        except (AgentError, OSError) as exc:
            logger.warning("%s: renewal failed, retrying in %gs: %s", self._device_id, RETRY_S, exc)
            self._network.call_later(RETRY_S, self._network.submit, self._renew)
            return
        if self.sealer is not None:
            self.sealer.use(self.identity)
        if self._on_renewed is not None:
            self._on_renewed(self.identity)
        self._schedule(self.identity)
