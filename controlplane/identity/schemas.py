"""Request and answer shapes of the identity routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from model_store.device_certs import MAX_PEM_BYTES
from protocol import FleetName

#: An enrollment token lives 24 hours unless asked otherwise; at most 30 days.
DEFAULT_ENROLLMENT_TTL_S = 24 * 3600
MAX_ENROLLMENT_TTL_S = 30 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollmentCreate(_Body):
    fleet: FleetName
    ttl_s: int = Field(default=DEFAULT_ENROLLMENT_TTL_S, ge=60, le=MAX_ENROLLMENT_TTL_S)


class EnrollmentCreated(BaseModel):
    device_id: str
    fleet: str
    token: str
    expires_at: datetime


#: holds a PEM certificate signing request, as a schema can say it (its content is checked;
#: text around the block and the older NEW CERTIFICATE REQUEST label are accepted)
CSR_PATTERN = r"-----BEGIN (NEW )?CERTIFICATE REQUEST-----"


class EnrollRequest(_Body):
    token: str = Field(min_length=1, max_length=128)
    csr: str = Field(min_length=1, max_length=MAX_PEM_BYTES, pattern=CSR_PATTERN)


class RenewRequest(_Body):
    csr: str = Field(min_length=1, max_length=MAX_PEM_BYTES, pattern=CSR_PATTERN)


class CertificateIssued(BaseModel):
    device_id: str
    fleet: str
    certificate: str
    ca_certificate: str
    not_after: datetime
    #: the device's report key, encrypted to its enrolled key (``model_store.report_key``)
    report_key: str


class Revoked(BaseModel):
    device_id: str
    revoked_at: datetime


class DeviceCAPublic(BaseModel):
    key_id: str
    certificate: str
