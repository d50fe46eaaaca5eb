"""Device identity certificates: the fleet device CA, CSRs, device and broker certificates,
and the revocation list (X.509, ECDSA P-256 / SHA-256).

The device CA is an ECDSA P-256 key that the control plane holds and that the offline root
certifies in the trust document (role ``device-ca``), so it rotates and is revoked like
every other key. Its X.509 certificate is *derived* from the key (subject, serial and
validity are fixed functions of the key id), so every replica, and every device, builds
an equivalent one; what makes it trusted is the trust document, not the certificate.

A device makes its key pair itself and sends only a CSR whose subject common name is its
device id; the certificate it gets back names the device the same way, is short-lived,
and is for TLS client authentication only. Every parse is bounded and strict; every
failure is a ``CertificateError`` with one line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from model_store.errors import CertificateError
from model_store.keys import is_p256, key_id
from protocol import ProtocolError, validate_device_id

#: Largest PEM accepted for a CSR, a certificate or a CA bundle.
MAX_PEM_BYTES = 16 * 1024
#: Device certificates are valid from a little before they are issued (clock skew).
BACKDATE = timedelta(minutes=5)
#: The derived CA certificate's validity: the trust document, not this, bounds the key.
_CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
_CA_NOT_AFTER = datetime(2099, 12, 31, tzinfo=UTC)
_ECDSA_SHA256 = hashes.SHA256()


@dataclass(frozen=True)
class DeviceCertificate:
    """A parsed device certificate: who it names, its key, serial and validity."""

    device_id: str
    public_key: ec.EllipticCurvePublicKey
    serial: int
    not_before: datetime
    not_after: datetime
    issuer_key_id: str
    pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    """A KeyUsage extension allowing only ``allowed`` (e.g. ``key_cert_sign=True``)."""
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: allowed.get(name, False) for name in names})


def ca_certificate(ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """The device CA's self-signed certificate, derived from its key (see module doc)."""
    public = ca_key.public_key()
    kid = key_id(public)
    name = _name(f"EdgeFleet device CA {kid[:16]}")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(int(kid[:30], 16))
        .not_valid_before(_CA_NOT_BEFORE)
        .not_valid_after(_CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(ca_key, _ECDSA_SHA256)
    )


def to_pem(
    item: x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList,
) -> bytes:
    return item.public_bytes(serialization.Encoding.PEM)


def make_csr(device_key: ec.EllipticCurvePrivateKey, device_id: str) -> bytes:
    """The PEM CSR a device sends to enroll or renew: CN = its device id."""
    return to_pem(
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(validate_device_id(device_id)))
        .sign(device_key, _ECDSA_SHA256)
    )


def _bounded(pem: bytes | str, what: str) -> bytes:
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
    if len(data) > MAX_PEM_BYTES:
        raise CertificateError(f"{what} is larger than {MAX_PEM_BYTES} bytes")
    return data


def _common_name(name: x509.Name, what: str) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attrs) != 1 or len(name.rdns) != 1:
        raise CertificateError(f"{what} subject must be exactly one common name")
    value = attrs[0].value
    if not isinstance(value, str):
        raise CertificateError(f"{what} common name is not text")
    try:
        return validate_device_id(value)
    except ProtocolError as exc:
        raise CertificateError(f"{what} common name is not a device id: {exc}") from exc


def parse_csr(pem: bytes | str) -> tuple[str, ec.EllipticCurvePublicKey]:
    """(device id, public key) of a CSR whose self-signature verifies; P-256 only."""
    try:
        csr = x509.load_pem_x509_csr(_bounded(pem, "CSR"))
    except ValueError as exc:
        raise CertificateError("CSR is not a PEM certificate signing request") from exc
    key = csr.public_key()
    if not is_p256(key):
        raise CertificateError("CSR key is not ECDSA P-256")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    if not csr.is_signature_valid:
        raise CertificateError("CSR signature does not verify (proof of possession failed)")
    return _common_name(csr.subject, "CSR"), key


def issue_device_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    device_id: str,
    device_key: ec.EllipticCurvePublicKey,
    *,
    lifetime: timedelta,
    now: datetime | None = None,
) -> x509.Certificate:
    """A TLS client certificate naming ``device_id`` (CN), issued by the device CA."""
    now = now or datetime.now(UTC)
    ca = ca_certificate(ca_key)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(validate_device_id(device_id)))
        .issuer_name(ca.subject)
        .public_key(device_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, _ECDSA_SHA256)
    )


def issue_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    server_key: ec.EllipticCurvePublicKey,
    hostnames: Sequence[str],
    *,
    lifetime: timedelta,
    now: datetime | None = None,
) -> x509.Certificate:
    """The broker's TLS server certificate (SAN: each hostname or IP address)."""
    if not hostnames:
        raise CertificateError("a server certificate needs at least one host name")
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = now or datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(hostnames[0]))
        .issuer_name(ca_certificate(ca_key).subject)
        .public_key(server_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, _ECDSA_SHA256)
    )


def issue_service_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    identity: str,
    key: ec.EllipticCurvePublicKey,
    *,
    lifetime: timedelta,
    now: datetime | None = None,
) -> x509.Certificate:
    """A TLS client certificate for a service identity (the control plane on the broker).

    Service identities start with ``_``, which no device id can (``protocol``), so a
    device can never be enrolled under one."""
    if not identity.startswith("_") or not identity[1:] or len(identity) > 64:
        raise CertificateError(f"service identity {identity[:70]!r} must start with '_'")
    now = now or datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(identity))
        .issuer_name(ca_certificate(ca_key).subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, _ECDSA_SHA256)
    )


def _verify_issued_by(cert: x509.Certificate, ca_public: ec.EllipticCurvePublicKey) -> bool:
    try:
        ca_public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(_ECDSA_SHA256))
    except InvalidSignature:
        return False
    return cert.signature_hash_algorithm is not None and isinstance(
        cert.signature_hash_algorithm, hashes.SHA256
    )


def parse_device_certificate(
    pem: bytes | str,
    ca_keys: Iterable[ec.EllipticCurvePublicKey],
    *,
    now: datetime | None = None,
) -> DeviceCertificate:
    """Parse a device certificate and check it: issued by one of ``ca_keys`` (the trust
    document's device CAs), valid at ``now`` (if given), a P-256 client certificate whose
    subject is one device id."""
    try:
        cert = x509.load_pem_x509_certificate(_bounded(pem, "certificate"))
    except ValueError as exc:
        raise CertificateError("not a PEM X.509 certificate") from exc
    device_id = _common_name(cert.subject, "certificate")
    key = cert.public_key()
    if not is_p256(key):
        raise CertificateError("certificate key is not ECDSA P-256")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    issuer = next((ca for ca in ca_keys if _verify_issued_by(cert, ca)), None)
    if issuer is None:
        raise CertificateError(f"certificate of {device_id} is not issued by a trusted device CA")
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now is not None and not not_before <= now < not_after:
        raise CertificateError(
            f"certificate of {device_id} is not valid now (valid {not_before:%Y-%m-%dT%H:%M:%SZ}"
            f" to {not_after:%Y-%m-%dT%H:%M:%SZ})"
        )
    return DeviceCertificate(
        device_id=device_id,
        public_key=key,
        serial=cert.serial_number,
        not_before=not_before,
        not_after=not_after,
        issuer_key_id=key_id(issuer),
        pem=to_pem(cert),
    )


def revocation_list(
    ca_key: ec.EllipticCurvePrivateKey,
    revoked: Iterable[tuple[int, datetime]],
    *,
    next_update: timedelta,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """The device CA's CRL listing ``(serial, revoked at)`` pairs (for the broker)."""
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_certificate(ca_key).subject)
        .last_update(now - BACKDATE)
        .next_update(now + next_update)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca_key, _ECDSA_SHA256)
