"""What deployment needs verified, and by whom: the keeper (``agent.keeper``) does it,
in a child process of its own in a real agent. Protocols only: nothing here verifies."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.deployment.commands import Command
    from model_store.statement import SignedManifest
    from protocol import SignedEnvelope


class BundleVerifier(Protocol):
    """Verifies bundle signatures with the current trust document's release keys.

    Both raise ``model_store.ModelStoreError`` (one line) when the signature or a file
    does not verify, and ``VerificationError`` when there is no trust document yet.
    """

    def verify_signature(self, signature: bytes, *, fresh: bool) -> SignedManifest:
        """The manifest ``signature`` signs (``fresh``: the trust document must also be
        unexpired now, as for new bytes)."""
        ...

    def verify_bundle(self, bundle_dir: Path) -> SignedManifest:
        """The manifest of a bundle directory whose signature and every file verify."""
        ...


class CommandVerifier(Protocol):
    """Keeps the trust document current and opens deployment commands with it."""

    def offer_trust(self, raw: bytes) -> bool:
        """A trust document from the trust topic; True if the current one changed
        (``TrustStoreError``; ``TrustFetchError`` when worth retrying)."""
        ...

    def verify_command(self, envelope: SignedEnvelope, *, device_id: str, now: datetime) -> Command:
        """``agent.deployment.commands.verify_command`` with the current trust."""
        ...
