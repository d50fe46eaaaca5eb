"""The agent's trust document: which release and control-plane keys it accepts.

Bootstrap, in order: the chain persisted in ``data_dir/trust.json``; else the ``trust``
file shipped at provisioning; else ``GET {control plane}/api/v1/trust/1``. The first
document of a chain must be signed by a pinned root key that its own root role lists
(``model_store.load_initial_trust``); each later one must be the next version, signed by
a root key of the previous one and of itself (``verify_trust_update``: a root rotation
is signed by both roots). A provisioning file newer than the persisted chain replaces it.

Updates (``offer``, from the trust topic, or ``catch_up`` when a deployment command names
a newer trust version): every missing version is fetched (``/api/v1/trust/{v}``) and
verified step by step; each accepted step is persisted atomically. A forged, skipping or
expired document raises ``TrustStoreError`` and the current document stays; a control
plane that cannot be reached raises ``TrustFetchError``.

``trust.json`` holds the chain from the last document a pinned root signs (so it is one
document until a root rotation), each with the time it was accepted, so that a restart
re-verifies it from the pinned roots (each step checked as of its acceptance time)::

    {"schema_version": 1, "chain": [{"accepted_at": "...", "envelope": {DSSE envelope}}]}
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import (
    AgentConfigError,
    DownloadError,
    TransientDownloadError,
    TrustFetchError,
    TrustStoreError,
)
from agent.fsutil import write_atomically
from model_store import (
    ModelStoreError,
    Role,
    TrustDocument,
    decode_envelope,
    key_id,
    load_initial_trust,
    open_envelope,
    verify_trust_chain,
    verify_trust_update,
)
from protocol import TRUST_PAYLOAD_TYPE

logger = logging.getLogger(__name__)

#: How many trust versions one catch-up may fetch: a claimed version far ahead is refused
#: instead of making the device fetch without end.
MAX_CATCH_UP = 1000

TRUST_FILENAME = "trust.json"
#: fetches a control-plane path such as ``/api/v1/trust/2`` (DownloadError if it cannot)
Fetch = Callable[[str], bytes]
Clock = Callable[[], datetime]


class _Link(BaseModel):
    model_config = ConfigDict(frozen=True)
    accepted_at: datetime
    envelope: dict[str, object]


class _Chain(BaseModel):
    model_config = ConfigDict(frozen=True)
    schema_version: int = 1
    chain: list[_Link] = Field(min_length=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def peek_version(raw: bytes) -> int:
    """The ``version`` an (unverified) trust envelope claims; only used to plan fetches."""
    try:
        envelope = decode_envelope(raw)
        payload = json.loads(base64.b64decode(envelope.payload, validate=True))
        version = payload["version"]
    except (ModelStoreError, ValueError, TypeError, KeyError) as exc:
        raise TrustStoreError(f"malformed trust document: {exc}") from exc
    if type(version) is not int or version < 1:
        raise TrustStoreError("malformed trust document: version is not an integer >= 1")
    return version


class TrustStore:
    """The current ``TrustDocument``, its bootstrap, updates and persistence."""

    def __init__(
        self,
        *,
        label: str,
        data_dir: Path,
        pinned_roots: Sequence[ec.EllipticCurvePublicKey],
        initial_file: Path | None,
        fetch: Fetch,
        clock: Clock = _utcnow,
    ) -> None:
        self._label = label
        self._path = data_dir / TRUST_FILENAME
        self._pinned = list(pinned_roots)
        self._initial_file = initial_file
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.RLock()
        self._chain: list[tuple[datetime, bytes]] = []
        self._current: TrustDocument | None = None
        #: trust documents refused (forged, skipping, expired, malformed)
        self.refused = 0

    @property
    def current(self) -> TrustDocument | None:
        return self._current

    @property
    def version(self) -> int:
        return self._current.version if self._current is not None else 0

    # -- bootstrap -------------------------------------------------------------------------

    def load_local(self) -> None:
        """The persisted chain and/or the provisioning file (AgentConfigError if that is bad).

        Without either, the first document is fetched later (``ensure``).
        """
        with self._lock:
            persisted = self._load_persisted()
            if self._initial_file is None:
                return
            try:
                raw = self._initial_file.read_bytes()
                document = load_initial_trust(raw, self._pinned, now=self._clock())
            except OSError as exc:
                raise AgentConfigError(f"trust: {self._initial_file}: {exc.strerror}") from exc
            except ModelStoreError as exc:
                if persisted:  # already provisioned; an old file is not fatal
                    logger.warning("%s: ignoring trust file: %s", self._label, exc)
                    return
                raise AgentConfigError(f"trust: {self._initial_file}: {exc}") from exc
            if document.version > self.version:
                self._accept_first(document, raw)

    def _load_persisted(self) -> bool:
        try:
            data = _Chain.model_validate_json(self._path.read_bytes())
        except FileNotFoundError:
            return False
        except (OSError, ValidationError) as exc:
            logger.error("%s: ignoring unreadable %s: %s", self._label, self._path, _line(exc))
            return False
        try:
            document: TrustDocument | None = None
            chain = []
            for link in data.chain:
                raw = json.dumps(link.envelope).encode("utf-8")
                when = link.accepted_at
                document = (
                    load_initial_trust(raw, self._pinned, now=when)
                    if document is None
                    else verify_trust_update(document, raw, now=when)
                )
                chain.append((when, raw))
        except (ModelStoreError, ValueError) as exc:  # ValueError: a time without a zone
            logger.error("%s: persisted trust does not verify, ignored: %s", self._label, exc)
            return False
        self._chain, self._current = chain, document
        return True

    def ensure(self) -> TrustDocument:
        """The current document, fetching version 1 if there is none yet."""
        with self._lock:
            if self._current is not None:
                return self._current
            raw = self._get(1)
            try:
                document = load_initial_trust(raw, self._pinned, now=self._clock())
            except ModelStoreError as exc:
                self._refused(f"trust document version 1 from the control plane: {exc}")
            self._accept_first(document, raw)
            return document

    # -- updates ---------------------------------------------------------------------------

    def offer(self, raw: bytes) -> bool:
        """A trust document from the trust topic; True if the current one changed."""
        with self._lock:
            try:
                version = peek_version(raw)
            except TrustStoreError as exc:
                self._refused(str(exc))
            current = self.ensure()
            if version <= current.version:
                logger.debug("%s: trust version %d already known", self._label, version)
                return False
            self.catch_up(version, last=raw)
            return True

    def catch_up(self, target: int, *, last: bytes | None = None) -> TrustDocument:
        """Verify and persist every version up to ``target`` (``last``: its raw bytes)."""
        with self._lock:
            current = self.ensure()
            if target - current.version > MAX_CATCH_UP:
                self._refused(
                    f"trust document version {target} is {target - current.version} versions "
                    f"ahead of {current.version} (more than {MAX_CATCH_UP} to fetch)"
                )
            versions = range(current.version + 1, target + 1)
            raws = [last if (v == target and last is not None) else self._get(v) for v in versions]
            try:
                # only the last step must be unexpired: a device that was offline while an
                # intermediate version expired can still catch up (as in TUF)
                steps = verify_trust_chain(current, raws, now=self._clock())
            except ModelStoreError as exc:
                self._refused(f"trust document up to version {target}: {exc}")
            for document, raw in zip(steps, raws, strict=True):
                self._accept_update(document, raw)
            return steps[-1] if steps else current

    def refresh(self) -> TrustDocument:
        """Catch up with the control plane's latest document (``GET /api/v1/trust``)."""
        with self._lock:
            raw = self._get(None)
            target = peek_version(raw)
            current = self.ensure()
            return self.catch_up(target, last=raw) if target > current.version else current

    # -- internals -------------------------------------------------------------------------

    def _get(self, version: int | None) -> bytes:
        path = "/api/v1/trust" if version is None else f"/api/v1/trust/{version}"
        what = "the latest trust document" if version is None else f"trust version {version}"
        try:
            return self._fetch(path)
        except TransientDownloadError as exc:
            raise TrustFetchError(f"cannot fetch {what}: {exc}") from exc
        except DownloadError as exc:
            self._refused(f"cannot fetch {what}: {exc}")

    def _refused(self, reason: str) -> NoReturn:
        self.refused += 1
        raise TrustStoreError(reason)

    def _accept_first(self, document: TrustDocument, raw: bytes) -> None:
        self._chain = [(self._clock(), raw)]
        self._persist()  # on disk before it is visible: a reader of trust_version sees it saved
        self._current = document

    def _accept_update(self, document: TrustDocument, raw: bytes) -> None:
        now = self._clock()
        self._chain = [(now, raw)] if self._pinned_signs(document) else [*self._chain, (now, raw)]
        self._persist()  # on disk before it is visible: a reader of trust_version sees it saved
        self._current = document
        logger.info("%s: trust document is now version %d", self._label, document.version)

    def _pinned_signs(self, document: TrustDocument) -> bool:
        """Whether a pinned root that ``document`` lists signs it (the chain can restart)."""
        ids = {key_id(k): k for k in self._pinned}
        roots = {k: v for k, v in document.keys_for(Role.ROOT).items() if k in ids}
        try:
            open_envelope(document.envelope, TRUST_PAYLOAD_TYPE, roots)
        except ModelStoreError:
            return False
        return True

    def _persist(self) -> None:
        data = {
            "schema_version": 1,
            "chain": [
                {"accepted_at": when.isoformat(), "envelope": json.loads(raw)}
                for when, raw in self._chain
            ],
        }
        try:
            write_atomically(self._path, json.dumps(data, indent=2).encode("utf-8"))
        except OSError as exc:
            logger.error("%s: cannot persist trust: %s", self._label, exc)


def _line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
