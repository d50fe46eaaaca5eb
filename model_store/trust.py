"""The trust document: which keys hold which role, signed by the offline root (TUF-like).

Payload (type ``protocol.TRUST_PAYLOAD_TYPE``, canonical JSON: sorted keys, compact)::

    {"_type": "edgefleet/trust", "version": N, "expires": "2026-01-01T00:00:00Z",
     "keys": {KEYID: PEM}, "revoked": [KEYID, ...],
     "roles": {"root": [KEYID, ...], "release": [...], "control-plane": [...],
               "device-ca": [...]}}

Parsing is strict: no unknown or duplicate fields; ``version`` an integer >= 1;
``expires`` timezone-aware; each key id is ``key_id`` of its PEM (an ECDSA P-256 key);
every role lists only keys of ``keys``, every key holds exactly one role (a control-plane
key can never sign bundles); the root role is not empty; no revoked key holds a role.
``device-ca`` (the keys that may issue device certificates, held by the control plane)
may be absent: documents made before device identity existed have none.

Rules: a first document is accepted if a pinned root key that its own root role lists
signs it; an update if its version is exactly one higher, a root key of the current
document AND a root key of the new one sign it (a rotation is signed by both roots), and
every id revoked before stays revoked. Expired documents are refused. One signature per
role is enough (the format leaves room for thresholds). Failures raise ``TrustError``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from model_store import dsse
from model_store.errors import KeyFileError, SignatureError, TrustError
from model_store.keys import key_id, public_key_from_pem, public_key_pem
from model_store.signing import verify_bundle, verify_signature
from model_store.statement import SignedManifest
from model_store.strict_json import StrictJson
from protocol.messages import TRUST_PAYLOAD_TYPE, SignedEnvelope

logger = logging.getLogger(__name__)

TRUST_TYPE = "edgefleet/trust"
MAX_TRUST_KEYS = 256
MAX_VERSION = 2**63 - 1
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_FIELDS = frozenset({"_type", "version", "expires", "keys", "roles", "revoked"})


class Role(StrEnum):
    ROOT = "root"
    RELEASE = "release"
    CONTROL_PLANE = "control-plane"
    DEVICE_CA = "device-ca"


#: Roles every trust document names (``device-ca`` is optional, see the module docstring).
_REQUIRED_ROLES = frozenset({Role.ROOT.value, Role.RELEASE.value, Role.CONTROL_PLANE.value})
_ROLE_NAMES = frozenset(r.value for r in Role)


@dataclass(frozen=True)
class TrustDocument:
    """A parsed, signature-checked trust document (see the module docstring)."""

    version: int
    expires: datetime
    keys: Mapping[str, ec.EllipticCurvePublicKey]
    roles: Mapping[Role, frozenset[str]]
    revoked: frozenset[str]
    envelope: SignedEnvelope

    def keys_for(self, role: Role) -> dict[str, ec.EllipticCurvePublicKey]:
        """The keys certified for ``role`` and not revoked, by key id."""
        return {k: self.keys[k] for k in sorted(self.roles.get(role, ())) if k not in self.revoked}

    def raw(self) -> bytes:
        """The signed envelope's JSON wire bytes (what is stored, served and published)."""
        return dsse.encode_envelope(self.envelope)

    def check_current(self, now: datetime) -> None:
        """``TrustError`` if the document has expired at ``now`` (timezone-aware)."""
        if now.tzinfo is None:
            raise ValueError("check_current needs a timezone-aware time")
        if now >= self.expires:
            raise TrustError(
                f"trust document version {self.version} expired at {_format_time(self.expires)}"
            )


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


#: The trust document's strict JSON and the wording of its errors.
_JSON = StrictJson(
    TrustError,
    invalid="trust document is not valid JSON ({exc})",
    duplicate="trust document has a duplicate field {key}",
    not_object="trust document is not a JSON object",
    key_chars=40,
)


def _id_list(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustError(f"trust document {where} is not a list of key ids")
    bad = [v for v in value if _KEY_ID.fullmatch(v) is None]
    if bad:
        raise TrustError(f"trust document {where} holds an invalid key id {bad[0][:70]!r}")
    if len(set(value)) != len(value):
        raise TrustError(f"trust document {where} lists a key id twice")
    return frozenset(value)


def _parse_keys(value: object) -> dict[str, ec.EllipticCurvePublicKey]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TrustError("trust document keys is not an object of PEM strings")
    if len(value) > MAX_TRUST_KEYS:
        raise TrustError(f"trust document lists more than {MAX_TRUST_KEYS} keys")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for kid, pem in value.items():
        try:
            key = public_key_from_pem(pem.encode("utf-8"), what=f"trust key {kid[:16]}")
        except (KeyFileError, UnicodeEncodeError) as exc:
            raise TrustError(f"trust document: {exc}") from exc
        if key_id(key) != kid:
            raise TrustError(f"trust document lists key {kid[:16]} under the wrong key id")
        keys[kid] = key
    return keys


def _parse_payload(payload: bytes, envelope: SignedEnvelope) -> TrustDocument:
    obj = _JSON.parse_object(payload)
    if set(obj) != _FIELDS:
        odd = sorted(set(obj) ^ _FIELDS)
        raise TrustError(f"trust document has missing or unknown fields: {', '.join(odd)[:200]}")
    if obj["_type"] != TRUST_TYPE:
        raise TrustError(f"trust document _type is {str(obj['_type'])[:40]!r}, not {TRUST_TYPE!r}")
    version = obj["version"]
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise TrustError("trust document version is not an integer >= 1")
    try:
        expires = datetime.fromisoformat(obj["expires"])
    except (TypeError, ValueError) as exc:
        raise TrustError("trust document expires is not an ISO-8601 time") from exc
    if expires.tzinfo is None:
        raise TrustError("trust document expires has no time zone")
    keys = _parse_keys(obj["keys"])
    roles_obj = obj["roles"]
    if not isinstance(roles_obj, dict) or not _REQUIRED_ROLES <= set(roles_obj) <= _ROLE_NAMES:
        raise TrustError(
            "trust document roles must name root, release, control-plane (and may name device-ca)"
        )
    roles = {role: _id_list(roles_obj.get(role.value, []), f"role {role.value}") for role in Role}
    revoked = _id_list(obj["revoked"], "revoked")
    if not roles[Role.ROOT]:
        raise TrustError("trust document root role is empty")
    holders: dict[str, Role] = {}
    for role, ids in roles.items():
        for kid in ids:
            if kid not in keys:
                raise TrustError(f"trust document role {role} names unknown key {kid[:16]}")
            if kid in revoked:
                raise TrustError(f"trust document key {kid[:16]} is both revoked and in a role")
            if kid in holders:
                raise TrustError(f"trust document key {kid[:16]} holds two roles")
            holders[kid] = role
    unused = sorted(set(keys) - set(holders))
    if unused:
        raise TrustError(f"trust document key {unused[0][:16]} holds no role")
    return TrustDocument(version, expires.astimezone(UTC), keys, roles, revoked, envelope)


def _open(
    envelope: SignedEnvelope, keys: Mapping[str, ec.EllipticCurvePublicKey], who: str
) -> tuple[bytes, frozenset[str]]:
    try:
        return dsse.open_envelope(envelope, TRUST_PAYLOAD_TYPE, keys)
    except SignatureError as exc:
        raise TrustError(f"trust document is not signed by {who}: {exc}") from exc


def _decode(raw: bytes) -> SignedEnvelope:
    try:
        return dsse.decode_envelope(raw)
    except SignatureError as exc:
        raise TrustError(f"trust document: {exc}") from exc


def parse_unverified_trust(raw: bytes) -> TrustDocument:
    """Parse strictly but check NO signature and no expiry: for operator tools only.

    ``edgectl`` uses it to show or extend a document; never act on what it returns.
    """
    envelope = _decode(raw)
    if envelope.payload_type != TRUST_PAYLOAD_TYPE:
        raise TrustError(f"not a trust document (payload type {envelope.payload_type[:80]!r})")
    try:
        payload = dsse.envelope_payload(envelope)
    except SignatureError as exc:
        raise TrustError(f"trust document: {exc}") from exc
    return _parse_payload(payload, envelope)


def build_trust_document(
    *,
    version: int,
    expires: datetime,
    roots: Sequence[ec.EllipticCurvePublicKey],
    releases: Sequence[ec.EllipticCurvePublicKey],
    control_planes: Sequence[ec.EllipticCurvePublicKey],
    device_cas: Sequence[ec.EllipticCurvePublicKey] = (),
    revoked: Iterable[str] = (),
    signers: Sequence[ec.EllipticCurvePrivateKey],
) -> TrustDocument:
    """Build and sign a trust document; ``TrustError`` if it would not parse back.

    ``signers`` must include a key of the new root role; for an update they must also
    include a root key of the current document (checked by ``verify_trust_update``).
    """
    if expires.tzinfo is None:
        raise TrustError("trust document expiry must be timezone-aware")
    by_role = {Role.ROOT: roots, Role.RELEASE: releases, Role.CONTROL_PLANE: control_planes}
    if device_cas:
        by_role[Role.DEVICE_CA] = device_cas
    keys = {key_id(k): public_key_pem(k).decode("ascii") for ks in by_role.values() for k in ks}
    payload = {
        "_type": TRUST_TYPE,
        "version": version,
        "expires": _format_time(expires),
        "keys": keys,
        "roles": {r.value: sorted({key_id(k) for k in ks}) for r, ks in by_role.items()},
        "revoked": sorted(set(revoked)),
    }
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    envelope = dsse.sign_envelope(data, TRUST_PAYLOAD_TYPE, signers)
    document = _parse_payload(data, envelope)
    signer_ids = {key_id(s.public_key()) for s in signers}
    if not signer_ids & document.roles[Role.ROOT]:
        raise TrustError("a trust document must be signed by a key of its own root role")
    return document


def load_initial_trust(
    raw: bytes, pinned_roots: Sequence[ec.EllipticCurvePublicKey], *, now: datetime
) -> TrustDocument:
    """The first trust document: signed by a pinned root key that its root role lists."""
    envelope = _decode(raw)
    pinned = {key_id(k): k for k in pinned_roots}
    payload, signed_by = _open(envelope, pinned, "a pinned root key")
    document = _parse_payload(payload, envelope)
    if not signed_by & document.roles[Role.ROOT] - document.revoked:
        raise TrustError(
            f"trust document version {document.version} is signed by a pinned key "
            "that its root role does not list"
        )
    document.check_current(now)
    logger.info("loaded trust document version %d", document.version)
    return document


def _next_version(current: TrustDocument, raw: bytes) -> TrustDocument:
    """``raw`` as the version after ``current``: signatures, version, revocations (no expiry)."""
    envelope = _decode(raw)
    payload, _ = _open(
        envelope, current.keys_for(Role.ROOT), f"a root key of version {current.version}"
    )
    document = _parse_payload(payload, envelope)
    if document.version != current.version + 1:
        raise TrustError(
            f"trust update has version {document.version}, expected {current.version + 1}"
        )
    _open(envelope, document.keys_for(Role.ROOT), f"its own root key (version {document.version})")
    for dropped in sorted(current.revoked - document.revoked)[:1]:
        raise TrustError(f"trust update version {document.version} un-revokes key {dropped[:16]}")
    return document


def verify_trust_update(current: TrustDocument, raw: bytes, *, now: datetime) -> TrustDocument:
    """The next trust document after ``current`` (rules in the module docstring)."""
    document = _next_version(current, raw)
    document.check_current(now)
    logger.info("trust document updated to version %d", document.version)
    return document


def verify_trust_chain(
    current: TrustDocument, raws: Sequence[bytes], *, now: datetime
) -> list[TrustDocument]:
    """Walk ``current`` forward through ``raws`` (versions +1, +2, ...), as TUF does.

    Every step must be signed by a root of the step before and by its own root, with the
    version exactly one higher; only the LAST document must be unexpired at ``now`` (a
    device that was offline while an intermediate version expired can still catch up,
    but never ends on an expired document). Returns each step's document, in order.
    """
    documents: list[TrustDocument] = []
    for raw in raws:
        current = _next_version(current, raw)
        documents.append(current)
    if documents:
        documents[-1].check_current(now)
        logger.info("trust document updated to version %d", documents[-1].version)
    return documents


def _release_keys(trust: TrustDocument) -> list[ec.EllipticCurvePublicKey]:
    keys = list(trust.keys_for(Role.RELEASE).values())
    if not keys:
        raise TrustError(f"trust document version {trust.version} certifies no release key")
    return keys


def verify_bundle_trusted(
    bundle_dir: Path, trust: TrustDocument, *, now: datetime | None = None
) -> SignedManifest:
    """``verify_bundle`` with ``trust``'s release keys (not revoked; expiry if ``now``)."""
    if now is not None:
        trust.check_current(now)
    return verify_bundle(bundle_dir, _release_keys(trust))


def verify_signature_trusted(
    signature: bytes, trust: TrustDocument, *, now: datetime | None = None
) -> SignedManifest:
    """``verify_signature`` with ``trust``'s release keys (not revoked; expiry if ``now``)."""
    if now is not None:
        trust.check_current(now)
    return verify_signature(signature, _release_keys(trust))
