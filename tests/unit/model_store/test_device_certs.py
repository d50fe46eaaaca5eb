"""Device CA, CSRs, device certificates and the CRL (model_store.device_certs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519

from model_store import generate_private_key
from model_store.device_certs import (
    ca_certificate,
    issue_device_certificate,
    issue_service_certificate,
    make_csr,
    parse_csr,
    parse_device_certificate,
    revocation_list,
    to_pem,
)
from model_store.errors import CertificateError

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_ca_certificate_is_derived_from_the_key() -> None:
    ca = generate_private_key()
    one, two = ca_certificate(ca), ca_certificate(ca)
    assert one.subject == two.subject and one.serial_number == two.serial_number
    assert one.public_key() == ca.public_key()
    basic = one.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is True and basic.path_length == 0
    assert ca_certificate(generate_private_key()).subject != one.subject


def test_csr_round_trip_and_certificate_names_the_device() -> None:
    ca, device = generate_private_key(), generate_private_key()
    device_id, key = parse_csr(make_csr(device, "cam-007"))
    assert device_id == "cam-007" and key == device.public_key()
    cert = issue_device_certificate(ca, device_id, key, lifetime=timedelta(days=7), now=NOW)
    parsed = parse_device_certificate(to_pem(cert), [ca.public_key()], now=NOW)
    assert parsed.device_id == "cam-007" and parsed.public_key == device.public_key()
    assert parsed.not_after == NOW + timedelta(days=7)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [u.dotted_string for u in usage] == ["1.3.6.1.5.5.7.3.2"]  # clientAuth only


def test_certificate_from_another_ca_or_out_of_date_is_refused() -> None:
    ca, other, device = generate_private_key(), generate_private_key(), generate_private_key()
    cert = to_pem(
        issue_device_certificate(
            ca, "d1", device.public_key(), lifetime=timedelta(hours=1), now=NOW
        )
    )
    with pytest.raises(CertificateError, match="not issued by a trusted device CA"):
        parse_device_certificate(cert, [other.public_key()], now=NOW)
    with pytest.raises(CertificateError, match="not valid now"):
        parse_device_certificate(cert, [ca.public_key()], now=NOW + timedelta(hours=2))
    assert parse_device_certificate(cert, [other.public_key(), ca.public_key()]).device_id == "d1"


def test_csr_must_prove_possession_and_name_one_device() -> None:
    device = generate_private_key()
    with pytest.raises(CertificateError, match="not a device id"):
        parse_csr(
            to_pem(
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a/b")]))
                .sign(device, hashes.SHA256())
            )
        )
    with pytest.raises(CertificateError, match="PEM certificate signing request"):
        parse_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(CertificateError, match="larger than"):
        parse_csr(b"x" * 20_000)
    ed = ed25519.Ed25519PrivateKey.generate()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "d1")]))
        .sign(ed, None)
    )
    with pytest.raises(CertificateError, match="not ECDSA P-256"):
        parse_csr(to_pem(csr))


def test_service_identities_cannot_be_device_ids() -> None:
    ca, key = generate_private_key(), generate_private_key()
    cert = issue_service_certificate(
        ca, "_edgefleet-control-plane", key.public_key(), lifetime=timedelta(days=1)
    )
    with pytest.raises(CertificateError, match="not a device id"):
        parse_device_certificate(to_pem(cert), [ca.public_key()])
    with pytest.raises(CertificateError, match="must start with '_'"):
        issue_service_certificate(ca, "cp", key.public_key(), lifetime=timedelta(days=1))


def test_revocation_list_lists_the_serials() -> None:
    ca = generate_private_key()
    crl = revocation_list(ca, [(12345, NOW), (678, NOW)], next_update=timedelta(days=1), now=NOW)
    assert crl.is_signature_valid(ca.public_key())
    assert crl.issuer == ca_certificate(ca).subject
    assert {r.serial_number for r in crl} == {12345, 678}
