"""The device's identity on disk (``data_dir/identity``): its key, certificate, the
device CA's certificate and its report key.

``device.key`` (PKCS8 PEM, 0600) is made on the device at enrollment and never leaves
it; ``device.crt`` and ``ca.crt`` come back from the control plane, and so does
``report.key`` (hex, 0600; ``model_store.report_key``), the key its reports are MACed
with, which came encrypted to ``device.key``. Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.errors import IdentityError
from agent.fsutil import write_atomically
from agent.identity.model import CA_FILE, CERT_FILE, KEY_FILE, REPORT_KEY_FILE, Identity
from model_store import ModelStoreError, generate_private_key, load_private_key
from model_store.report_key import ReportKey, report_key

__all__ = ["CA_FILE", "CERT_FILE", "KEY_FILE", "REPORT_KEY_FILE", "Identity", "IdentityFiles"]


def _write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class IdentityFiles:
    """Reads and writes ``data_dir/identity``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> Identity | None:
        """The enrolled identity, or None if the device has not enrolled yet."""
        key_path, cert_path = self.directory / KEY_FILE, self.directory / CERT_FILE
        if not (key_path.exists() and cert_path.exists()):
            return None
        try:
            load_private_key(key_path)  # readable, and an ECDSA P-256 key
            pem = cert_path.read_bytes()
            cert = x509.load_pem_x509_certificate(pem)
            mac_path = self.directory / REPORT_KEY_FILE
            mac = (
                report_key(bytes.fromhex(mac_path.read_text("ascii")))
                if mac_path.exists()
                else None
            )
        except (ModelStoreError, OSError, ValueError) as exc:
            raise IdentityError(f"identity in {self.directory} is unusable: {exc}") from exc
        return Identity(
            pem, cert.not_valid_before_utc, cert.not_valid_after_utc, self.directory, mac
        )

    def new_key(self) -> ec.EllipticCurvePrivateKey:
        """A fresh key pair, its private half written 0600 (replacing an older one)."""
        key = generate_private_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(
            self.directory / (KEY_FILE + ".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return key

    def commit(
        self,
        certificate_pem: bytes,
        ca_pem: bytes,
        *,
        new_key: bool,
        mac: ReportKey | None = None,
    ) -> Identity:
        """Store a certificate, the key made for it (``new_key``) and the report key that
        came with it; the identity now in force. A new key drops the old key's report key;
        a renewal without one keeps the stored one."""
        mac_path = self.directory / REPORT_KEY_FILE
        if new_key:
            mac_path.unlink(missing_ok=True)  # bound to the key being replaced
            os.replace(self.directory / (KEY_FILE + ".new"), self.directory / KEY_FILE)
        if mac is not None:
            _write_secret(mac_path, mac.secret.hex().encode("ascii"))
        write_atomically(self.directory / CA_FILE, ca_pem)
        write_atomically(self.directory / CERT_FILE, certificate_pem)
        identity = self.load()
        assert identity is not None
        return identity
