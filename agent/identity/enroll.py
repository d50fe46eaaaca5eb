"""Enrollment and renewal against the control plane (``/api/v1/enroll[/renew]``).

The device makes its key pair, sends only a CSR, and accepts the certificate it gets
back only if it names this device and this key and is issued by a device CA that the
device's trust document certifies (role ``device-ca``): a control plane, or anything
posing as one, cannot hand the device a certificate from another CA. The report key that
comes with it is encrypted to the device's key (``model_store.report_key``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from agent import http_client
from agent.errors import IdentityError
from agent.identity.files import Identity, IdentityFiles
from model_store import ModelStoreError, key_id
from model_store.device_certs import MAX_PEM_BYTES, make_csr, parse_device_certificate
from model_store.errors import CertificateError, SignatureError
from model_store.report_key import ReportKey, unwrap_report_key

logger = logging.getLogger(__name__)

TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 4 * MAX_PEM_BYTES


def _post(url: str, body: dict[str, str]) -> dict[str, object]:
    """POST ``body`` as JSON; the JSON object answered with 200 (``agent.http_client``,
    not httpx: a renewal would leave httpx loaded in the agent for good)."""
    data = json.dumps(body).encode()
    try:
        with http_client.request(
            "POST",
            url,
            headers={"Content-Type": "application/json"},
            body=data,
            connect_timeout_s=TIMEOUT_S,
            read_timeout_s=TIMEOUT_S,
        ) as resp:
            status, content = resp.status_code, resp.read(MAX_ANSWER_BYTES)
    except http_client.TransportError as exc:
        raise IdentityError(f"cannot reach {url}: {exc}") from exc
    if len(content) > MAX_ANSWER_BYTES:
        raise IdentityError(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        answer = json.loads(content)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        detail = answer.get("detail") if isinstance(answer, dict) else None
        text = content.decode("utf-8", "replace")
        raise IdentityError(f"{url}: HTTP {status}: {str(detail or text)[:200]}")
    return answer


def _accept(
    answer: dict[str, object],
    device_id: str,
    key: ec.EllipticCurvePrivateKey,
    ca_keys: Iterable[ec.EllipticCurvePublicKey],
) -> tuple[bytes, bytes, ReportKey | None]:
    cert_pem, ca_pem = answer.get("certificate"), answer.get("ca_certificate")
    if not isinstance(cert_pem, str) or not isinstance(ca_pem, str):
        raise IdentityError("the control plane's answer holds no certificate")
    try:
        cert = parse_device_certificate(cert_pem, ca_keys, now=datetime.now(UTC))
    except CertificateError as exc:
        raise IdentityError(f"refused the issued certificate: {exc}") from exc
    if cert.device_id != device_id or key_id(cert.public_key) != key_id(key.public_key()):
        raise IdentityError("refused the issued certificate: it names another device or key")
    wrapped = answer.get("report_key")
    if wrapped is None:
        return cert.pem, ca_pem.encode("ascii"), None  # a control plane without report keys
    if not isinstance(wrapped, str):
        raise IdentityError("the control plane's answer holds a malformed report key")
    try:
        mac = unwrap_report_key(wrapped, key, device_id=device_id)
    except SignatureError as exc:
        raise IdentityError(f"refused the report key: {exc}") from exc
    return cert.pem, ca_pem.encode("ascii"), mac


def enroll(
    files: IdentityFiles,
    *,
    control_plane_url: str,
    device_id: str,
    token: str,
    ca_keys: Iterable[ec.EllipticCurvePublicKey],
) -> Identity:
    """Make a key pair, redeem ``token`` for a certificate, store both."""
    ca_keys = list(ca_keys)
    if not ca_keys:
        raise IdentityError("the trust document certifies no device CA; cannot enroll")
    key = files.new_key()
    answer = _post(
        f"{control_plane_url}/api/v1/enroll",
        {"token": token, "csr": make_csr(key, device_id).decode("ascii")},
    )
    cert_pem, ca_pem, mac = _accept(answer, device_id, key, ca_keys)
    identity = files.commit(cert_pem, ca_pem, new_key=True, mac=mac)
    logger.info(
        "%s: enrolled (key %s, certificate valid until %s)",
        device_id,
        key_id(key.public_key())[:16],
        identity.not_after.isoformat(),
    )
    return identity


def renew(
    files: IdentityFiles,
    identity: Identity,
    *,
    control_plane_url: str,
    device_id: str,
    ca_keys: Iterable[ec.EllipticCurvePublicKey],
) -> Identity:
    """A fresh certificate for the enrolled key (the CSR it signs is the proof)."""
    try:
        key = identity.private_key()
    except ModelStoreError as exc:
        raise IdentityError(f"identity in {identity.directory} is unusable: {exc}") from exc
    answer = _post(
        f"{control_plane_url}/api/v1/enroll/renew",
        {"csr": make_csr(key, device_id).decode("ascii")},
    )
    cert_pem, ca_pem, mac = _accept(answer, device_id, key, list(ca_keys))
    renewed = files.commit(cert_pem, ca_pem, new_key=False, mac=mac)
    logger.info("%s: certificate renewed until %s", device_id, renewed.not_after.isoformat())
    return renewed
