"""The device's enrolled identity as the agent's own process holds it: where its key and
certificates lie, the certificate's validity and the report key (``agent.identity.files``
reads and writes them; nothing here imports ``cryptography``, see ``agent.keeper``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.report_key import ReportKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE, CERT_FILE, CA_FILE, REPORT_KEY_FILE = "device.key", "device.crt", "ca.crt", "report.key"


@dataclass(frozen=True)
class Identity:
    """An enrolled device: its certificate (what the broker and the control plane know it
    by) and where its key lies; the key itself is read where it is used (TLS, a CSR)."""

    certificate_pem: bytes
    not_before: datetime
    not_after: datetime
    directory: Path
    #: None until the control plane gives it one (then reports are MACed, not signed)
    report_key: ReportKey | None = None

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_FILE

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The device's private key, read from ``key_path`` (imports ``cryptography``:
        the keeper's side only)."""
        from model_store.keys import load_private_key

        return load_private_key(self.key_path)
