"""The fleet device CA the control plane holds: it issues device certificates.

The CA key must be certified by the current trust document for the ``device-ca`` role
(checked at start-up and before each issue, so a trust update that drops or revokes
the key stops issuance at once). Its certificate is derived from the key
(``model_store.device_certs.ca_certificate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.errors import Unavailable
from controlplane.trust import TrustStore
from model_store import key_id
from model_store.device_certs import (
    ca_certificate,
    issue_device_certificate,
    revocation_list,
    to_pem,
)
from model_store.trust import Role, TrustDocument


def certifies_device_ca(document: TrustDocument, ca_key_id: str) -> bool:
    """Whether ``document`` certifies ``ca_key_id`` for the device-ca role (not revoked)."""
    return ca_key_id in document.keys_for(Role.DEVICE_CA)


@dataclass
class DeviceCA:
    """Issues short-lived device certificates with a trust-certified CA key."""

    key: ec.EllipticCurvePrivateKey
    trust: TrustStore
    lifetime: timedelta

    def __post_init__(self) -> None:
        self.key_id = key_id(self.key.public_key())
        self.certificate = ca_certificate(self.key)
        self.certificate_pem = to_pem(self.certificate)

    def _check_certified(self) -> None:
        document = self.trust.document
        if not certifies_device_ca(document, self.key_id):
            raise Unavailable(
                f"device CA key {self.key_id[:16]} is not certified by trust document "
                f"v{document.version}; enrollment is off until a trust update certifies it"
            )

    def issue(
        self, device_id: str, public_key: ec.EllipticCurvePublicKey, now: datetime
    ) -> x509.Certificate:
        self._check_certified()
        return issue_device_certificate(
            self.key, device_id, public_key, lifetime=self.lifetime, now=now
        )

    def crl_pem(self, revoked: list[tuple[int, datetime]], now: datetime) -> bytes:
        return to_pem(revocation_list(self.key, revoked, next_update=self.lifetime, now=now))
