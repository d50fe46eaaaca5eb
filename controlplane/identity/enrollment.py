"""Enrollment, renewal and revocation of device identities (database side).

- ``create_enrollment``: an operator asks for a one-time token for DEVICE in FLEET; only
  the token's SHA-256 is stored, the token is shown once.
- ``enroll``: the device sends the token and a CSR (its key pair never leaves it). The
  token must be unused, unexpired and for the device the CSR names. The device is
  registered in the token's fleet, its key recorded, its replay windows reset, and it
  gets a certificate and a new report key (``model_store.report_key``, encrypted to the
  CSR's key). A device is registered ONLY here: never by a report.
- ``renew``: a CSR signed by the key the device enrolled with (proof of possession is the
  authentication) gets a fresh certificate and its report key again (one is made for a
  device enrolled before report keys existed); a revoked device gets none.
- ``revoke``: the identity and its certificates are revoked; its reports are dropped and
  it gets no more commands.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, col, delete, select

from controlplane.auth import hash_token
from controlplane.crud.catalog import get_or_create_fleet
from controlplane.errors import InvalidRequest, NotFound, Unauthorized
from controlplane.identity.ca import DeviceCA
from controlplane.identity.tables import DeviceIdentity, EnrollmentToken, IssuedCertificate
from controlplane.models import Device, DeviceCommand, utcnow
from model_store import key_id, public_key_pem
from model_store.device_certs import parse_csr, to_pem
from model_store.errors import CertificateError
from model_store.report_key import new_report_key, report_key
from model_store.report_key_wrap import wrap_report_key

logger = logging.getLogger(__name__)

ENROLLMENT_TOKEN_PREFIX = "efe_"
#: The one answer to every bad token, so a caller learns nothing about which tokens exist.
BAD_TOKEN = "enrollment token is unknown, already used or expired"


@dataclass(frozen=True)
class Issued:
    """What a device gets back: its certificate, the CA's, and its report key encrypted
    to its enrolled key."""

    device_id: str
    fleet: str
    certificate_pem: bytes
    ca_certificate_pem: bytes
    not_after: datetime
    wrapped_report_key: str


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def new_enrollment_token() -> str:
    return ENROLLMENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_enrollment(
    session: Session, *, device_id: str, fleet: str, ttl: timedelta, created_by: str | None
) -> tuple[str, datetime]:
    """A new one-time token for ``device_id`` in ``fleet``; (token, expires at)."""
    token = new_enrollment_token()
    expires = utcnow() + ttl
    session.add(
        EnrollmentToken(
            device_id=device_id,
            fleet=fleet,
            token_sha256=hash_token(token),
            created_by=created_by,
            expires_at=expires,
        )
    )
    session.commit()
    logger.info("enrollment token created for device %s in fleet %s", device_id, fleet)
    return token, expires


def _csr(csr_pem: str) -> tuple[str, ec.EllipticCurvePublicKey]:
    try:
        return parse_csr(csr_pem)
    except CertificateError as exc:
        raise InvalidRequest(str(exc)) from exc


def _record(
    session: Session, ca: DeviceCA, identity: DeviceIdentity, key: ec.EllipticCurvePublicKey
) -> Issued:
    now, device_id = utcnow(), identity.device_id
    cert = ca.issue(device_id, key, now)
    serial = format(cert.serial_number, "x")
    identity.cert_serial, identity.cert_not_after = serial, cert.not_valid_after_utc
    if identity.report_key is None:
        identity.report_key = new_report_key().secret.hex()
    mac = report_key(bytes.fromhex(identity.report_key))
    session.add(identity)
    session.add(
        IssuedCertificate(
            serial=serial,
            device_id=identity.device_id,
            issued_at=now,
            not_after=cert.not_valid_after_utc,
        )
    )
    device = session.get(Device, identity.device_id)
    assert device is not None
    session.commit()
    return Issued(
        device_id=identity.device_id,
        fleet=device.fleet,
        certificate_pem=to_pem(cert),
        ca_certificate_pem=ca.certificate_pem,
        not_after=cert.not_valid_after_utc,
        wrapped_report_key=wrap_report_key(mac, key, device_id=device_id),
    )


def enroll(session: Session, ca: DeviceCA, *, token: str, csr_pem: str) -> Issued:
    """Redeem ``token`` for a certificate of the CSR's key (see the module docstring)."""
    row = session.exec(
        select(EnrollmentToken)
        .where(EnrollmentToken.token_sha256 == hash_token(token))
        .with_for_update()
    ).first()
    now = utcnow()
    if row is None or row.used_at is not None or _aware(row.expires_at) <= now:
        raise Unauthorized(BAD_TOKEN)
    device_id, key = _csr(csr_pem)
    if device_id != row.device_id:
        raise InvalidRequest(
            f"the CSR names device {device_id!r}, the token is for {row.device_id!r}"
        )
    row.used_at = now
    session.add(row)
    get_or_create_fleet(session, name=row.fleet)
    device = session.get(Device, device_id, with_for_update=True)
    if device is None:
        device = Device(id=device_id, fleet=row.fleet)
        logger.info("device %s registered in fleet %s (enrolled)", device_id, row.fleet)
    elif device.fleet != row.fleet:
        logger.info("device %s re-enrolled: fleet %s -> %s", device_id, device.fleet, row.fleet)
        device.fleet = row.fleet
    session.add(device)
    session.flush()
    identity = session.get(DeviceIdentity, device_id) or DeviceIdentity(
        device_id=device_id, key_id="", public_key_pem="", cert_serial="", cert_not_after=now
    )
    identity.key_id, identity.public_key_pem = key_id(key), public_key_pem(key).decode("ascii")
    identity.enrolled_at, identity.renewed_at, identity.revoked_at = now, None, None
    identity.report_key = None  # a new key pair: a new report key (made by _record)
    device.key_id, device.report_windows = identity.key_id, {}  # a new key: a new sequence
    session.add(device)
    issued = _record(session, ca, identity, key)
    logger.info("device %s enrolled with key %s", device_id, identity.key_id[:16])
    return issued


def renew(session: Session, ca: DeviceCA, *, csr_pem: str) -> Issued:
    """A fresh certificate for an enrolled, unrevoked device whose key signed the CSR."""
    device_id, key = _csr(csr_pem)
    identity = session.get(DeviceIdentity, device_id)
    if identity is None or identity.revoked_at is not None or identity.key_id != key_id(key):
        raise Unauthorized(f"device {device_id} is not enrolled with this key (or is revoked)")
    identity.renewed_at = utcnow()
    issued = _record(session, ca, identity, key)
    logger.info("device %s renewed its certificate (until %s)", device_id, issued.not_after)
    return issued


def revoke(session: Session, *, device_id: str) -> datetime:
    """Revoke the device's identity and every certificate it was issued; when."""
    identity = session.get(DeviceIdentity, device_id, with_for_update=True)
    if identity is None:
        raise NotFound(f"device {device_id} is not enrolled")
    now = utcnow()
    if identity.revoked_at is None:
        identity.revoked_at = now
        session.add(identity)
    for cert in session.exec(
        select(IssuedCertificate).where(
            IssuedCertificate.device_id == device_id, col(IssuedCertificate.revoked_at).is_(None)
        )
    ):
        cert.revoked_at = now
        session.add(cert)
    session.exec(delete(DeviceCommand).where(col(DeviceCommand.device_id) == device_id))
    device = session.get(Device, device_id, with_for_update=True)
    if device is not None:
        device.online, device.key_id, device.report_windows = False, None, {}
        session.add(device)
    session.commit()
    logger.warning("device %s revoked: its reports are dropped, it gets no commands", device_id)
    return _aware(identity.revoked_at or now)


def revoked_serials(session: Session) -> list[tuple[int, datetime]]:
    """(serial, revoked at) of every revoked certificate not yet expired: the CRL's list."""
    now = utcnow()
    rows = session.exec(
        select(IssuedCertificate).where(col(IssuedCertificate.revoked_at).is_not(None))
    ).all()
    return [
        (int(r.serial, 16), _aware(r.revoked_at))
        for r in rows
        if r.revoked_at is not None and _aware(r.not_after) > now
    ]


def is_enrolled(session: Session, device_id: str) -> bool:
    identity = session.get(DeviceIdentity, device_id)
    return identity is not None and identity.revoked_at is None
