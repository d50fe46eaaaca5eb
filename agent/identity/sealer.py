"""Seals every report the device sends (``model_store.report_seal``): MACed with its
report key, or, until the control plane gives it one, signed with its enrolled key (by
``sign``: in the agent, the keeper does it, ``agent.keeper``).

Sequence numbers grow strictly across restarts: the highest number that may have been
used is reserved on disk (``data_dir/identity/report_seq``) a block at a time, so a
restart, even after ``kill -9``, continues above anything sent before, at the cost of
one fsync per ``BLOCK`` reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import IdentityError
from agent.fsutil import write_atomically
from agent.identity.model import Identity
from model_store.report_key import ReportKey
from model_store.report_seal import MAX_SEQ, seal_report

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

BLOCK = 1000
SEQ_FILE = "report_seq"
#: signs ``(stream, seq, body)`` with the device key: a sealed report
Signer = Callable[[str, int, bytes], bytes]


class ReportSealer:
    """Thread-safe: one sequence for all of one device's report streams."""

    def __init__(self, identity: Identity, device_id: str, directory: Path, sign: Signer) -> None:
        """``sign`` seals a report with the device key while there is no report key."""
        self._key = identity.report_key
        self._sign = sign
        self.device_id = device_id
        self._path = directory / SEQ_FILE
        self._lock = threading.Lock()
        try:
            text = self._path.read_text("ascii").strip() if self._path.exists() else "0"
            self._next = int(text) + 1
        except (OSError, ValueError) as exc:
            raise IdentityError(f"{self._path}: unreadable report sequence: {exc}") from exc
        self._reserved = self._next - 1

    def _take(self) -> int:
        with self._lock:
            seq = self._next
            if seq > self._reserved:
                self._reserved = min(seq + BLOCK - 1, MAX_SEQ)
                write_atomically(self._path, str(self._reserved).encode("ascii"))
            self._next = seq + 1
            return seq

    def use(self, identity: Identity) -> None:
        """Seal with ``identity``'s keys from now on (a renewal brought a report key)."""
        self._key = identity.report_key

    @property
    def report_key(self) -> ReportKey | None:
        """The report key reports are MACed with (and the control plane's acks), if any."""
        return self._key

    def seal(self, stream: str, body: bytes) -> bytes:
        """``body`` (a message's JSON) sealed for ``stream`` with the next sequence number."""
        return self.seal_numbered(stream, body)[1]

    def seal_numbered(self, stream: str, body: bytes) -> tuple[int, bytes]:
        """Like ``seal``, with the sequence number it was sealed with."""
        seq, key = self._take(), self._key
        if key is None:
            return seq, self._sign(stream, seq, body)
        return seq, seal_report(key, device_id=self.device_id, stream=stream, seq=seq, body=body)


def signer_with(identity: Identity, device_id: str) -> Signer:
    """A ``Signer`` with ``identity``'s key, read at the first report it signs (this
    imports ``cryptography``: the keeper's side, and the simulators')."""
    key: ec.EllipticCurvePrivateKey | None = None

    def sign(stream: str, seq: int, body: bytes) -> bytes:
        nonlocal key
        if key is None:
            key = identity.private_key()
        return seal_report(key, device_id=device_id, stream=stream, seq=seq, body=body)

    return sign
