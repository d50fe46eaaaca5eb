"""Signed deployment commands: each device's desired state, signed by the control-plane key.

A command is a ``protocol.DesiredState`` (device id, generation, ``expires_at`` = signing
time + ``EDGEFLEET_COMMAND_TTL``, ``trust_version``, every model assignment of the
device's set, each with its declared ``size``) in a DSSE envelope (payload type
``DESIRED_STATE_PAYLOAD_TYPE``) signed by this control plane's key, which the current
trust document must certify.

The agent refuses an equal generation with different content, so the last signed command
of each device is stored (``DeviceCommand``) and republished **byte-identical** while it
is still good: the same model set (each model's deployment, bundle — the variant the
device's runtimes prefer can change —, backend pin and priority), same trust version, same
signing key, a generation the device has not gone past, and more than half its lifetime
left (the download URLs it carries with an object-store blob store are not compared:
:mod:`controlplane.blob_urls`). Otherwise it is re-signed with a **new, higher
generation** (``max(last command, device's reported generation) + 1``, or the generation
a new deployment just assigned).
Generations therefore only grow, and a given generation is only ever signed once per
device."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from sqlmodel import Session, col, select

from controlplane.blob_urls import BlobUrls, without_urls
from controlplane.desired import Desired, desired
from controlplane.errors import Unavailable
from controlplane.models import Device, DeviceCommand, utcnow
from controlplane.publisher import DesiredStatePublisher, SignedCommand
from controlplane.schemas import as_utc
from controlplane.status import generation_floor
from controlplane.trust import TrustStore, certifies
from model_store import TrustDocument, key_id, sign_envelope
from protocol import (
    DESIRED_STATE_PAYLOAD_TYPE,
    MAX_GENERATION,
    DesiredState,
    ModelAssignment,
    ProtocolError,
    SignedEnvelope,
    decode,
    encode,
)

logger = logging.getLogger(__name__)


def stored_command(row: DeviceCommand) -> SignedCommand:
    """The command ``row`` holds, as it is published (byte-identical)."""
    return SignedCommand(
        device_id=row.device_id,
        generation=row.generation,
        trust_version=row.trust_version,
        expires_at=as_utc(row.expires_at),
        raw=bytes(row.envelope),
    )


def _models(row: DeviceCommand) -> list[ModelAssignment] | None:
    """The model set a stored command names, download URLs left out (None if it cannot
    be read back)."""
    try:
        envelope = decode(SignedEnvelope, bytes(row.envelope))
        state = decode(DesiredState, base64.b64decode(envelope.payload, validate=True))
    except (ProtocolError, binascii.Error):
        return None
    return without_urls(state.models)


def _pins(assignments: list[ModelAssignment]) -> str | None:
    """The backend pin the command carries (the same for every model of a device)."""
    return next((a.backend for a in assignments if a.backend), None)


class CommandSigner:
    """Signs and keeps each device's deployment command (one per process; thread-safe)."""

    def __init__(
        self,
        *,
        key: EllipticCurvePrivateKey,
        trust: TrustStore,
        ttl: timedelta,
        urls: BlobUrls | None = None,
    ) -> None:
        self._key = key
        self.key_id = key_id(key.public_key())
        self.trust = trust
        self.ttl = ttl
        #: presigned download URLs put in each command (an object-store blob store)
        self.urls = urls
        # Serialises sign decisions in this process (SQLite ignores FOR UPDATE; on
        # PostgreSQL the device row lock serialises replicas).
        self._lock = threading.Lock()

    def refusal(self, document: TrustDocument, now: datetime) -> str | None:
        """Why nothing can be signed under ``document`` now, or None."""
        if not certifies(document, self.key_id):
            return (
                f"control-plane key {self.key_id} is not certified by trust document "
                f"v{document.version}"
            )
        if now >= document.expires:
            return (
                f"trust document v{document.version} expired at {document.expires.isoformat()}; "
                "POST the next version to /api/v1/trust"
            )
        return None

    def check_ready(self, session: Session, *, now: datetime | None = None) -> TrustDocument:
        """The current trust document; Unavailable (503) if commands cannot be signed."""
        document = self.trust.current(session)
        reason = self.refusal(document, now or utcnow())
        if reason is not None:
            raise Unavailable(reason)
        return document

    def reusable(
        self,
        stored: DeviceCommand | None,
        device: Device,
        want: Desired,
        document: TrustDocument,
        now: datetime,
    ) -> bool:
        """Whether ``stored`` may be republished as it is (see the module docstring)."""
        return (
            stored is not None
            and stored.deployment_id == want.deployment_id
            and stored.generation
            >= generation_floor(signed=device.generation, reported=device.reported_generation)
            and stored.trust_version == document.version
            and stored.key_id == self.key_id
            and as_utc(stored.expires_at) - now > self.ttl / 2
            and _models(stored) == want.assignments
        )

    def command_for(
        self, session: Session, device_id: str, *, now: datetime | None = None
    ) -> tuple[SignedCommand, bool] | None:
        """The device's command and whether it was signed now; None if it has none
        (``commands_for`` of one device)."""
        return self.commands_for(session, [device_id], now=now).get(device_id)

    def commands_for(
        self, session: Session, device_ids: Iterable[str], *, now: datetime | None = None
    ) -> dict[str, tuple[SignedCommand, bool]]:
        """Each device's command and whether it was signed now (devices without one are
        left out), in one transaction: their rows locked in id order, every command that
        must be signed anew signed and stored, one commit (before anything is published).

        Unavailable if a new command is needed but cannot be signed (see :meth:`refusal`).
        """
        now = now or utcnow()
        ids = sorted(set(device_ids))
        if not ids:
            return {}
        with self._lock:
            devices = {
                d.id: d
                for d in session.exec(
                    select(Device)
                    .where(col(Device.id).in_(ids))
                    .order_by(col(Device.id))
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            }
            wanted = {w.device_id: w for w in desired(session, device_ids=ids)}
            stored = {
                c.device_id: c
                for c in session.exec(
                    select(DeviceCommand)
                    .where(col(DeviceCommand.device_id).in_(ids))
                    .execution_options(populate_existing=True)
                )
            }
            document = self.trust.current(session)
            out: dict[str, tuple[SignedCommand, bool]] = {}
            signed: list[tuple[str, Desired, int]] = []
            for device_id in ids:
                device, want, row = (
                    devices.get(device_id),
                    wanted.get(device_id),
                    stored.get(device_id),
                )
                if device is None or want is None:
                    continue
                if self.reusable(row, device, want, document, now):
                    assert row is not None
                    out[device_id] = (stored_command(row), False)
                    continue
                reason = self.refusal(document, now)
                if reason is not None:
                    session.rollback()
                    raise Unavailable(reason)
                command = self._sign(session, device, row, want, document, now)
                if command is None:  # no generation left
                    if row is not None:
                        out[device_id] = (stored_command(row), False)
                    continue
                out[device_id] = (command, True)
                signed.append((device_id, want, command.generation))
            if signed:
                session.commit()
            else:
                session.rollback()
        for device_id, want, generation in signed:
            logger.info(
                "signed command for %s: generation %s, %s, trust v%s",
                device_id,
                generation,
                ", ".join(f"{a.name} {a.version}" for a in want.assignments) or "no models",
                document.version,
            )
        return out

    def _sign(
        self,
        session: Session,
        device: Device,
        stored: DeviceCommand | None,
        want: Desired,
        document: TrustDocument,
        now: datetime,
    ) -> SignedCommand | None:
        """Sign ``want`` for ``device`` with the next generation and stage the rows
        (the caller commits); None if no generation is left."""
        floor = generation_floor(
            signed=stored.generation if stored else 0, reported=device.reported_generation
        )
        generation = device.generation if device.generation > floor else floor + 1
        if generation > MAX_GENERATION:
            logger.warning("device %s has no higher generation left to sign", device.id)
            return None
        expires_at = now + self.ttl
        models = want.assignments
        if self.urls is not None:
            models = self.urls.located(models, now=now, expires_at=expires_at)
        state = DesiredState(
            device_id=device.id,
            generation=generation,
            issued_at=now,
            expires_at=expires_at,
            trust_version=document.version,
            models=models,
        )
        envelope = encode(sign_envelope(encode(state), DESIRED_STATE_PAYLOAD_TYPE, [self._key]))
        fields: dict[str, Any] = {
            "generation": generation,
            "deployment_id": want.deployment_id,
            "backend": _pins(want.assignments),
            "trust_version": document.version,
            "key_id": self.key_id,
            "expires_at": state.expires_at,
            "signed_at": now,
            "envelope": envelope,
        }
        row = stored or DeviceCommand(device_id=device.id, **fields)
        row.sqlmodel_update(fields)
        device.generation = generation
        session.add(row)
        session.add(device)
        return SignedCommand(
            device_id=device.id,
            generation=generation,
            trust_version=document.version,
            expires_at=as_utc(state.expires_at),
            raw=envelope,
        )


def publish_commands(
    session: Session,
    signer: CommandSigner,
    publisher: DesiredStatePublisher,
    *,
    device_ids: Iterable[str] | None = None,
    now: datetime | None = None,
    changed_only: bool = False,
) -> int:
    """(Re-)sign where needed and publish the commands of ``device_ids`` (default: all).

    With ``changed_only`` only freshly signed commands are published. The commands to sign
    anew are signed in one transaction (``CommandSigner.commands_for``). When they cannot
    be signed now (key not certified, trust expired), that is logged and each of those
    devices' last command is republished as it is. Returns how many were handed to the
    publisher.
    """
    now = now or utcnow()
    wanted = desired(session, device_ids=device_ids)
    ids = [w.device_id for w in wanted]
    devices = {d.id: d for d in session.exec(select(Device).where(col(Device.id).in_(ids))).all()}
    stored = {
        c.device_id: c
        for c in session.exec(select(DeviceCommand).where(col(DeviceCommand.device_id).in_(ids)))
    }
    document = signer.trust.current(session)
    results: dict[str, tuple[SignedCommand, bool]] = {}
    need: list[str] = []
    for want in wanted:
        row, device = stored.get(want.device_id), devices.get(want.device_id)
        if device is not None and signer.reusable(row, device, want, document, now):
            assert row is not None
            results[want.device_id] = (stored_command(row), False)
        else:
            need.append(want.device_id)
    fallback = {d: stored_command(stored[d]) for d in need if d in stored}
    if need:
        try:
            results |= signer.commands_for(session, need, now=now)
        except Unavailable as exc:
            logger.error(
                "cannot sign deployment commands for %d device(s) (they keep their last one): %s",
                len(need),
                exc,
            )
            results |= {d: (command, False) for d, command in fallback.items()}
    sent = 0
    for want in wanted:
        if (result := results.get(want.device_id)) is None:
            continue
        command, fresh = result
        if (fresh or not changed_only) and publisher.publish_desired(command):
            sent += 1
    return sent


def reissue_commands(
    session: Session,
    signer: CommandSigner,
    publisher: DesiredStatePublisher,
    *,
    device_ids: Iterable[str],
    now: datetime | None = None,
) -> list[str]:
    """Re-sign and publish the commands of ``device_ids`` whose content changed (a backend
    pin set or cleared); the ids of those signed anew, sorted.

    A device whose command is still good (its effective pin did not change, e.g. a fleet
    pin under a device pin) is left alone; one without a deployment has no command yet. A
    command that cannot be signed now is logged and the device keeps its last one (the
    periodic re-sign retries it).
    """
    ids = [want.device_id for want in desired(session, device_ids=device_ids)]
    try:
        results = signer.commands_for(session, ids, now=now)
    except Unavailable as exc:
        logger.error("cannot re-issue the commands of %d device(s): %s", len(ids), exc)
        return []
    signed = sorted(d for d, (_, fresh) in results.items() if fresh)
    for device_id in signed:
        publisher.publish_desired(results[device_id][0])
    return signed
