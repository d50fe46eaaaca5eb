"""Signed deployment commands: open the envelope on the desired topic, or refuse it.

The retained payload on ``.../desired`` is a ``SignedEnvelope`` (payload type
``DESIRED_STATE_PAYLOAD_TYPE``) holding a ``DesiredState``. ``verify_command`` accepts it
only if a control-plane key that the current trust document certifies (and does not
revoke) signs it, the trust document has not expired, and it names this device. If the
command names a newer ``trust_version`` than the agent's, the chain is fetched first.

The generation rules (lower, or equal with different content) and the expiry
(``check_fresh``) are applied by the manager, which knows what it accepted before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from agent.errors import CommandRefused, TrustFetchError, TrustStoreError
from model_store.errors import ModelStoreError
from protocol import (
    DESIRED_STATE_PAYLOAD_TYPE,
    DesiredState,
    ProtocolError,
    SignedEnvelope,
    decode,
)

if TYPE_CHECKING:
    from agent.trust_store import TrustStore
    from model_store.trust import TrustDocument

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """A verified deployment command: the desired state, the sha256 of its payload and
    the payload itself."""

    desired: DesiredState
    digest: str
    envelope: SignedEnvelope
    payload: bytes

    @property
    def generation(self) -> int:
        return self.desired.generation


def _format_time(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


def peek_trust_version(envelope: SignedEnvelope) -> int | None:
    """The ``trust_version`` an (unverified) command claims; only used to plan fetches."""
    try:
        payload = json.loads(base64.b64decode(envelope.payload, validate=True))
        version = payload["trust_version"]
    except (ValueError, TypeError, KeyError):
        return None
    return version if type(version) is int and version >= 1 else None


def _current_trust(trust: TrustStore, envelope: SignedEnvelope, now: datetime) -> TrustDocument:
    """The trust document to verify ``envelope`` with: caught up and not expired."""
    document = trust.ensure()
    wanted = peek_trust_version(envelope)
    if wanted is not None and wanted > document.version:
        try:
            document = trust.catch_up(wanted)
        except TrustFetchError:
            raise
        except TrustStoreError as exc:  # evaluate the command with the trust we have
            logger.warning("trust update to version %d refused: %s", wanted, exc)
            document = trust.ensure()
    try:
        document.check_current(now)
    except ModelStoreError:
        try:
            document = trust.refresh()
            document.check_current(now)
        except (ModelStoreError, TrustStoreError) as exc:
            raise CommandRefused(f"trust document expired: {exc}") from exc
    return document


def verify_command(
    envelope: SignedEnvelope, *, trust: TrustStore, device_id: str, now: datetime
) -> Command:
    """Open a deployment command; ``CommandRefused`` (one line) if it is not acceptable.

    ``TrustFetchError`` when the trust chain it needs cannot be fetched right now and
    the current trust does not verify it (worth retrying).
    """
    fetch_error: TrustFetchError | None = None
    try:
        document = _current_trust(trust, envelope, now)
    except TrustFetchError as exc:
        fetch_error = exc
        document = trust.ensure()
        try:  # the fallback must be current too: an expired trust accepts nothing
            document.check_current(now)
        except ModelStoreError as expired:
            raise CommandRefused(
                f"trust document version {document.version} expired and a newer one "
                f"cannot be fetched: {exc}"
            ) from expired
    except TrustStoreError as exc:
        raise CommandRefused(f"no trust document: {exc}") from exc
    from model_store import Role, open_envelope  # the keeper's side (agent.keeper)

    try:
        payload, _ = open_envelope(
            envelope, DESIRED_STATE_PAYLOAD_TYPE, document.keys_for(Role.CONTROL_PLANE)
        )
    except ModelStoreError as exc:
        if fetch_error is not None:
            raise fetch_error from exc
        raise CommandRefused(
            f"not signed by a certified control-plane key (trust version {document.version}): {exc}"
        ) from exc
    return command_of(payload, envelope, device_id=device_id)


def command_of(payload: bytes, envelope: SignedEnvelope, *, device_id: str) -> Command:
    """The command a verified ``envelope`` carries (``payload``: its opened payload);
    ``CommandRefused`` if it is malformed or for another device."""
    try:
        desired = decode(DesiredState, payload)
    except ProtocolError as exc:
        raise CommandRefused(str(exc)) from exc
    if desired.device_id != device_id:
        raise CommandRefused(f"command is for device {desired.device_id!r}, not this one")
    return Command(desired, hashlib.sha256(payload).hexdigest(), envelope, payload)


def check_fresh(command: Command, now: datetime) -> None:
    """``CommandRefused`` if the command has expired at ``now``."""
    expires = command.desired.expires_at
    if expires.tzinfo is None or expires <= now:
        raise CommandRefused(f"generation {command.generation} expired at {_format_time(expires)}")
