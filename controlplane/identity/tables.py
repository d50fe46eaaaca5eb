"""Tables of device identity: enrollment tokens, enrolled identities and issued
certificates. (The key id a device's reports must be sealed by, and their replay windows,
live on its ``Device`` row, which ingestion locks anyway.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlmodel import Field, SQLModel

from controlplane.models import utcnow


def _ts(*, nullable: bool = False, **kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kwargs)


class EnrollmentToken(SQLModel, table=True):
    """A one-time enrollment token for one device id and fleet; only its SHA-256 is kept."""

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(index=True, max_length=128)
    fleet: str = Field(max_length=128)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    created_by: str | None = Field(default=None, max_length=128)
    created_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True, default=None)


class DeviceIdentity(SQLModel, table=True):
    """The key a device enrolled with (it made the key pair; only the public half is here),
    its current certificate and its report key. Reports are believed only if this key
    signed them or the report key MACed them.

    ``report_key`` (hex) is a secret shared with the device (``model_store.report_key``):
    whoever reads it can seal reports as the device, so the database and its backups are
    secrets, as a device registry's are (Azure IoT Hub, AWS IoT keep symmetric device keys
    the same way). It is never logged nor returned by the API, and is replaced whenever
    the device enrolls anew."""

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=128)
    key_id: str = Field(max_length=64)
    public_key_pem: str = Field(sa_type=Text)
    report_key: str | None = Field(default=None, max_length=64, repr=False)
    cert_serial: str = Field(max_length=64)
    cert_not_after: datetime = _ts()
    enrolled_at: datetime = _ts(default_factory=utcnow)
    renewed_at: datetime | None = _ts(nullable=True, default=None)
    revoked_at: datetime | None = _ts(nullable=True, default=None)


class IssuedCertificate(SQLModel, table=True):
    """Every device certificate issued (hex serial), for the revocation list."""

    serial: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(index=True, max_length=128)
    issued_at: datetime = _ts(default_factory=utcnow)
    not_after: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True, default=None)
