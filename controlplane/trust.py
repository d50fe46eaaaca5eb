"""The trust chain the control plane holds: verified from the pinned root keys, kept in the DB.

Start-up (:meth:`TrustStore.open`): an empty database is bootstrapped with the trust
document of ``EDGEFLEET_TRUST`` (``load_initial_trust`` against the pinned roots); a
database that holds a chain has it re-verified from the pinned roots, the oldest stored
version with ``load_initial_trust`` and every later one with ``verify_trust_update``.
An older document's expiry is judged at the time it was accepted (``created_at``, as in
TUF, where only the newest document must be unexpired); the newest must be current now.

At run time :meth:`TrustStore.current` follows versions that another replica sharing the
database stored (re-verified the same way), and :meth:`TrustStore.update` accepts the
next version from the API. Nothing here signs anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from controlplane.errors import ConfigError, Conflict, InvalidRequest
from controlplane.models import TrustVersion, utcnow
from controlplane.schemas import as_utc
from model_store import (
    Role,
    SignatureError,
    TrustDocument,
    TrustError,
    decode_envelope,
    load_initial_trust,
    verify_trust_update,
)
from protocol import SignedEnvelope

logger = logging.getLogger(__name__)


def _claimed_version(envelope: SignedEnvelope) -> int:
    """The version an (unverified) trust envelope claims; only used to pick the answer."""
    try:
        payload = json.loads(base64.b64decode(envelope.payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("malformed trust document: the payload is not base64 JSON") from exc
    version = payload.get("version") if isinstance(payload, dict) else None
    if type(version) is not int:
        raise InvalidRequest("malformed trust document: no integer version")
    return version


def _verify_chain(
    rows: Sequence[TrustVersion], roots: Sequence[EllipticCurvePublicKey]
) -> TrustDocument:
    """Verify stored versions (ascending, contiguous) from the pinned roots; TrustError."""
    first, *rest = rows
    document = load_initial_trust(first.envelope, roots, now=as_utc(first.created_at))
    if document.version != first.version:
        raise TrustError(f"stored trust version {first.version} holds version {document.version}")
    for row in rest:
        document = verify_trust_update(document, row.envelope, now=as_utc(row.created_at))
    return document


def _store(session: Session, document: TrustDocument, now: datetime) -> bool:
    """Store a verified document; False if that version is already stored."""
    session.add(TrustVersion(version=document.version, envelope=document.raw(), created_at=now))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def _renewal(current: TrustDocument, raw: bytes, name: str, now: datetime) -> TrustDocument | None:
    """The start-up trust document if it is the next version (verified); None if older."""
    try:
        claimed = _claimed_version(decode_envelope(raw))
    except (SignatureError, InvalidRequest) as exc:
        raise ConfigError(f"cannot use trust document {name}: {exc}") from exc
    if claimed <= current.version:
        logger.info(
            "the database holds trust versions up to %d; %s (version %d) is not needed",
            current.version,
            name,
            claimed,
        )
        return None
    if claimed != current.version + 1:
        raise ConfigError(
            f"trust document {name} is version {claimed} but the database holds up to "
            f"version {current.version}: give version {current.version + 1}"
        )
    try:
        return verify_trust_update(current, raw, now=now)
    except TrustError as exc:
        raise ConfigError(f"cannot use trust document {name}: {exc}") from exc


class TrustStore:
    """The current trust document of this control plane, shared by every thread."""

    def __init__(self, roots: Sequence[EllipticCurvePublicKey], document: TrustDocument) -> None:
        self._roots = list(roots)
        self._document = document
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        engine: Engine,
        roots: Sequence[EllipticCurvePublicKey],
        *,
        bootstrap: bytes | None,
        bootstrap_name: str = "EDGEFLEET_TRUST",
        accept: Callable[[TrustDocument], None] | None = None,
        now: datetime | None = None,
    ) -> TrustStore:
        """Load (or bootstrap) the chain; ConfigError (one line) if it cannot be trusted.

        ``accept`` vets the resulting document (e.g. that it certifies our signing key)
        before anything is stored; it raises ConfigError to refuse. With a database that
        holds a chain, a ``bootstrap`` document one version above its newest is verified
        as an update and stored (how an expired chain is renewed while the API is down);
        an older or equal one is ignored.
        """
        now = now or utcnow()
        with Session(engine) as session:
            rows = session.exec(select(TrustVersion).order_by(col(TrustVersion.version))).all()
            if rows:
                try:
                    document = _verify_chain(rows, roots)
                except TrustError as exc:
                    raise ConfigError(
                        f"the stored trust chain does not verify from the pinned root keys: {exc}"
                    ) from exc
                renewed = (
                    None
                    if bootstrap is None
                    else _renewal(document, bootstrap, bootstrap_name, now)
                )
                document = renewed or document
            elif bootstrap is None:
                raise ConfigError(
                    "the database holds no trust document: give the root-signed one "
                    "with --trust or EDGEFLEET_TRUST"
                )
            else:
                try:
                    document = renewed = load_initial_trust(bootstrap, roots, now=now)
                except TrustError as exc:
                    raise ConfigError(f"cannot use trust document {bootstrap_name}: {exc}") from exc
            try:
                document.check_current(now)
            except TrustError as exc:
                raise ConfigError(
                    f"{exc}: start with --trust set to version {document.version + 1}"
                ) from exc
            if accept is not None:
                accept(document)
            if renewed is not None:
                if not _store(session, renewed, now):
                    # another replica stored this version first: use what the DB holds
                    return cls.open(engine, roots, bootstrap=None, accept=accept, now=now)
                logger.info(
                    "stored trust document version %d from %s", renewed.version, bootstrap_name
                )
        logger.info("trust chain verified up to version %d", document.version)
        return cls(roots, document)

    @property
    def document(self) -> TrustDocument:
        """The latest document this process has verified (see :meth:`current`)."""
        return self._document

    def current(self, session: Session) -> TrustDocument:
        """The latest document, after following versions another replica stored."""
        latest = session.exec(select(func.max(TrustVersion.version))).one()
        if latest is None or latest <= self._document.version:
            return self._document
        with self._lock:
            rows = session.exec(
                select(TrustVersion)
                .where(col(TrustVersion.version) > self._document.version)
                .order_by(col(TrustVersion.version))
            ).all()
            document = self._document
            try:
                for row in rows:
                    document = verify_trust_update(
                        document, row.envelope, now=as_utc(row.created_at)
                    )
            except TrustError as exc:
                logger.error("stored trust version %s does not verify: %s", row.version, exc)
            if document.version > self._document.version:
                logger.info("following trust document version %d", document.version)
                self._document = document
            return self._document

    def raw(self, session: Session, version: int) -> bytes | None:
        """The stored envelope of ``version``, or None."""
        row = session.get(TrustVersion, version)
        return None if row is None else bytes(row.envelope)

    def update(
        self, session: Session, raw: bytes, *, now: datetime | None = None
    ) -> tuple[TrustDocument, bool]:
        """Accept the next version: (document, True); (current, False) if ``raw`` is it.

        InvalidRequest (400) if it is malformed or does not verify as an update of the
        current document; Conflict (409) if its version is not the current one plus one.
        """
        now = now or utcnow()
        try:
            envelope = decode_envelope(raw)
        except SignatureError as exc:
            raise InvalidRequest(str(exc)) from exc
        claimed = _claimed_version(envelope)
        current = self.current(session)
        if claimed == current.version and envelope == current.envelope:
            return current, False
        if claimed != current.version + 1:
            raise Conflict(
                f"trust document version {claimed} does not follow the current version "
                f"{current.version} (expected {current.version + 1})"
            )
        try:
            document = verify_trust_update(current, raw, now=now)
        except TrustError as exc:
            raise InvalidRequest(str(exc)) from exc
        if not _store(session, document, now):
            raise Conflict(f"trust document version {document.version} was stored concurrently")
        with self._lock:
            if document.version > self._document.version:
                self._document = document
        return document, True


def certifies(document: TrustDocument, key_id: str) -> bool:
    """Whether ``document`` certifies ``key_id`` for the control-plane role (not revoked)."""
    return key_id in document.keys_for(Role.CONTROL_PLANE)
