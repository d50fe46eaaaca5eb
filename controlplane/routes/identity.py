"""Device identity: enrollment tokens, enrollment and renewal, revocation, the device CA.

- ``POST /devices/{id}/enrollment`` (operator): a one-time token for the device.
- ``POST /enroll`` (no API token: the enrollment token is the credential): token + CSR
  -> certificate. ``POST /enroll/renew`` (no API token: the CSR, signed by the enrolled
  key, is the proof) -> a fresh certificate.
- ``POST /devices/{id}/revoke`` (operator): cut the device off.
- ``GET /device-ca`` and ``/device-ca/crl`` (no API token): the CA certificate and the
  revocation list, for brokers and devices. Nothing secret is in either.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response

from controlplane.auth.dependency import CallerDep
from controlplane.deps import DeviceCADep, PublisherDep, SessionDep
from controlplane.identity import enrollment
from controlplane.identity.schemas import (
    CertificateIssued,
    DeviceCAPublic,
    EnrollmentCreate,
    EnrollmentCreated,
    EnrollRequest,
    RenewRequest,
    Revoked,
)
from controlplane.models import utcnow
from controlplane.routes.devices import DeviceId

router = APIRouter(tags=["identity"])


def _issued(issued: enrollment.Issued) -> CertificateIssued:
    return CertificateIssued(
        device_id=issued.device_id,
        fleet=issued.fleet,
        certificate=issued.certificate_pem.decode("ascii"),
        ca_certificate=issued.ca_certificate_pem.decode("ascii"),
        report_key=issued.wrapped_report_key,
        not_after=issued.not_after,
    )


@router.post("/devices/{device_id}/enrollment", status_code=201)
def create_enrollment(
    device_id: DeviceId, body: EnrollmentCreate, session: SessionDep, caller: CallerDep
) -> EnrollmentCreated:
    """A one-time enrollment token for ``device_id`` in ``fleet``; shown only here."""
    token, expires = enrollment.create_enrollment(
        session,
        device_id=device_id,
        fleet=body.fleet,
        ttl=timedelta(seconds=body.ttl_s),
        created_by=caller.name,
    )
    return EnrollmentCreated(device_id=device_id, fleet=body.fleet, token=token, expires_at=expires)


@router.post(
    "/enroll",
    responses={
        400: {"description": "the CSR is not usable (not PEM, wrong key type or name)"},
        401: {"description": "the enrollment token is unknown, already used or expired"},
        503: {"description": "no device CA configured: no device can enroll"},
    },
)
def enroll(body: EnrollRequest, session: SessionDep, ca: DeviceCADep) -> CertificateIssued:
    """Redeem an enrollment token: the device's CSR in, its certificate out."""
    return _issued(enrollment.enroll(session, ca, token=body.token, csr_pem=body.csr))


@router.post(
    "/enroll/renew",
    responses={
        400: {"description": "the CSR is not usable (not PEM, or not signed by its key)"},
        401: {"description": "not enrolled with this key, or revoked"},
        404: {"description": "the device is not enrolled"},
        503: {"description": "no device CA configured"},
    },
)
def renew(body: RenewRequest, session: SessionDep, ca: DeviceCADep) -> CertificateIssued:
    """A fresh certificate for a CSR signed by the key the device enrolled with."""
    return _issued(enrollment.renew(session, ca, csr_pem=body.csr))


@router.post(
    "/devices/{device_id}/revoke", responses={404: {"description": "the device is not enrolled"}}
)
def revoke(device_id: DeviceId, session: SessionDep, publisher: PublisherDep) -> Revoked:
    """Revoke the device: its reports are dropped, its certificates listed in the CRL,
    and its retained command cleared."""
    when = enrollment.revoke(session, device_id=device_id)
    publisher.clear_desired(device_id)
    return Revoked(device_id=device_id, revoked_at=when)


@router.get("/device-ca")
def device_ca(ca: DeviceCADep) -> DeviceCAPublic:
    """The device CA's certificate (PEM) and key id."""
    return DeviceCAPublic(key_id=ca.key_id, certificate=ca.certificate_pem.decode("ascii"))


@router.get("/device-ca/crl", response_class=Response)
def device_ca_crl(session: SessionDep, ca: DeviceCADep) -> Response:
    """The device CA's current revocation list (PEM)."""
    pem = ca.crl_pem(enrollment.revoked_serials(session), utcnow())
    return Response(pem, media_type="application/x-pem-file")
