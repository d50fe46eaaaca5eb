"""The keeper's operations, in the calling process (``agent.keeper``).

The child process runs one of these (``agent.keeper.serve``); the simulators, whose
agents share one process, and ``edge-agent enroll`` use one directly. This module
imports ``cryptography`` (through ``model_store`` and ``agent.identity``): the agent's own
process never imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from agent.deployment.commands import Command, verify_command
from agent.deployment.fetch import BlobFetcher
from agent.errors import AgentConfigError, TrustFetchError, TrustStoreError, VerificationError
from agent.identity.enroll import enroll, renew
from agent.identity.files import IdentityFiles
from agent.identity.model import Identity
from agent.identity.sealer import Signer, signer_with
from agent.keeper.api import KeeperSettings
from agent.trust_store import TrustStore
from model_store import (
    ModelStoreError,
    TrustDocument,
    load_trusted_keys,
    verify_bundle_trusted,
    verify_signature_trusted,
)
from model_store.statement import SignedManifest
from model_store.trust import Role
from protocol import SignedEnvelope

#: fetches a control-plane path such as ``/api/v1/trust/2`` (``DownloadError`` if not)
Fetch = Callable[[str], bytes]


def open_device_trust(settings: KeeperSettings, fetch: Fetch) -> TrustStore:
    """The device's trust store, loaded from disk: pinned roots read, ``data_dir`` made;
    ``AgentConfigError`` in one line if either fails."""
    try:
        roots = load_trusted_keys(settings.root_keys)
    except ModelStoreError as exc:
        raise AgentConfigError(f"root_keys: {exc}") from exc
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgentConfigError(f"data_dir {settings.data_dir}: {exc.strerror or exc}") from exc
    trust = TrustStore(
        label=settings.device_id,
        data_dir=settings.data_dir,
        pinned_roots=roots,
        initial_file=settings.trust,
        fetch=fetch,
    )
    trust.load_local()
    return trust


def device_ca_keys(trust: TrustStore) -> list[ec.EllipticCurvePublicKey]:
    """The device CAs the trust document certifies (fetching it first if need be)."""
    return list(trust.ensure().keys_for(Role.DEVICE_CA).values())


class TrustedBundles:
    """``BundleVerifier`` with the release keys of whatever document ``current`` returns."""

    def __init__(self, current: Callable[[], TrustDocument | None]) -> None:
        self._current = current

    def _document(self) -> TrustDocument:
        if (document := self._current()) is None:
            raise VerificationError("no trust document to verify bundles with")
        return document

    def verify_signature(self, signature: bytes, *, fresh: bool) -> SignedManifest:
        now = datetime.now(UTC) if fresh else None
        return verify_signature_trusted(signature, self._document(), now=now)

    def verify_bundle(self, bundle_dir: Path) -> SignedManifest:
        return verify_bundle_trusted(bundle_dir, self._document())


class LocalKeeper(TrustedBundles):
    """``Keeper`` in this process. ``fetch``: how trust documents are fetched (None: a
    fetcher of its own, closed by ``close``). ``trust_floor``: the highest trust version
    the agent accepted before (a keeper child's: see ``open_trust``)."""

    def __init__(
        self, settings: KeeperSettings, *, fetch: Fetch | None = None, trust_floor: int = 0
    ) -> None:
        super().__init__(lambda: self._store().current)
        self.settings = settings
        self._floor = trust_floor
        self._fetcher: BlobFetcher | None = None
        if fetch is None:
            self._fetcher = BlobFetcher(
                settings.control_plane_url,
                deadline_s=settings.download_timeout_s,
                stall_s=settings.download_stall_timeout_s,
            )
            fetch = self._fetcher.fetch_document
        self._fetch = fetch
        self._trust: TrustStore | None = None
        self._files = IdentityFiles(settings.data_dir / "identity")
        self._signer: Signer | None = None
        self._lock = threading.Lock()

    @property
    def trust_version(self) -> int:
        return self._trust.version if self._trust is not None else 0

    @property
    def refused_trust(self) -> int:
        return self._trust.refused if self._trust is not None else 0

    def _store(self) -> TrustStore:
        if self._trust is None:
            self.open_trust()
        assert self._trust is not None
        return self._trust

    def open_trust(self) -> None:
        """The trust store from disk, caught up to ``trust_floor`` first: a document the
        agent accepted but could not save, or a ``trust.json`` put back to an older chain,
        must not bring back an older trust (``TrustFetchError`` until it can catch up)."""
        if self._trust is not None:
            return
        store = open_device_trust(self.settings, self._fetch)
        if store.version < self._floor:
            try:
                store.catch_up(self._floor)
            except TrustStoreError as exc:
                raise TrustFetchError(
                    f"trust document version {store.version} on disk is older than version "
                    f"{self._floor}, which this agent accepted before: {exc}"
                ) from exc
        self._trust = store

    def ensure_trust(self) -> int:
        return self._store().ensure().version

    def offer_trust(self, raw: bytes) -> bool:
        return self._store().offer(raw)

    def verify_command(self, envelope: SignedEnvelope, *, device_id: str, now: datetime) -> Command:
        return verify_command(envelope, trust=self._store(), device_id=device_id, now=now)

    def load_identity(self) -> Identity | None:
        return self._files.load()

    def enroll(self, token: str) -> Identity:
        trust = self._store()
        return enroll(
            self._files,
            control_plane_url=self.settings.control_plane_url,
            device_id=self.settings.device_id,
            token=token,
            ca_keys=device_ca_keys(trust),
        )

    def renew(self, identity: Identity) -> Identity:
        trust = self._store()
        renewed = renew(
            self._files,
            identity,
            control_plane_url=self.settings.control_plane_url,
            device_id=self.settings.device_id,
            ca_keys=device_ca_keys(trust),
        )
        with self._lock:
            self._signer = None  # the key is the same; read again all the same
        return renewed

    def seal_signed(self, stream: str, seq: int, body: bytes) -> bytes:
        with self._lock:
            if self._signer is None:
                identity = self._files.load()
                if identity is None:
                    raise VerificationError("not enrolled: no key to sign a report with")
                self._signer = signer_with(identity, self.settings.device_id)
            sign = self._signer
        return sign(stream, seq, body)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
