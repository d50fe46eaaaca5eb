"""End-to-end authentication of device reports, independent of the broker.

A report is believed only if it is sealed (``model_store.report_seal``) by the key the
device named by its topic enrolled with, for that topic's stream, not revoked, not dated
beyond ``MAX_FUTURE_SKEW`` ahead of our clock, and with a sequence number its stream's
replay window has not seen. The window lives in the database (``ReportWindow``, one row
per device, stream and enrolled key) and moves by compare-and-swap in the caller's
transaction, so replicas that share the ingestion never accept one report twice.

The hot path costs one signature check and one statement: the device's key is cached
(parsed once), and a report newer than everything seen on its stream moves the window
with a single conditional ``UPDATE`` whose ``WHERE`` names the key id. Revocation deletes
the windows and re-enrollment replaces them (with the new key id), so a stale cache can
never let an old key through: the ``UPDATE`` matches nothing, and the slow path re-reads
the identity. Reordered reports (within the window), replays and every refusal take the
slow path.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import BigInteger, Integer, Update, bindparam, case, cast, literal, update
from sqlmodel import Session, col

from controlplane.identity.tables import DeviceIdentity, ReportWindow
from model_store import public_key_from_pem
from model_store.errors import KeyFileError, SignatureError
from model_store.keys import require_p256
from model_store.report_seal import (
    WILL_STREAM,
    MalformedReport,
    ReplayWindow,
    Report,
    open_report,
)
from protocol import TopicKind

#: How far ahead of the control plane's clock a report may be dated (device clock skew).
MAX_FUTURE_SKEW = timedelta(minutes=5)
_CAS_TRIES = 5
_MASK = (1 << ReplayWindow.WIDTH) - 1


def _advance_statement() -> Update:
    """``UPDATE reportwindow`` for ``seq`` (``:q``) above ``top``: slide the bitmap by the
    gap, mark the old top seen; matches nothing unless device, stream and key id match.
    Built once (building SQLAlchemy expressions per report costs more than the verify)."""
    table = ReportWindow.__table__  # type: ignore[attr-defined]
    gap = bindparam("q", type_=BigInteger) - table.c.top
    shift = cast(gap, Integer)  # <= WIDTH where it is used: PostgreSQL shifts by int4
    one = cast(literal(1), BigInteger)
    moved = table.c.seen.op("<<")(shift).op("|")(one.op("<<")(shift - 1))
    return (
        update(table)
        .where(
            table.c.device_id == bindparam("d"),
            table.c.stream == bindparam("s"),
            table.c.key_id == bindparam("k"),
            table.c.top < bindparam("q", type_=BigInteger),
        )
        .values(
            seen=case((gap > ReplayWindow.WIDTH, 0), else_=moved.op("&")(_MASK)),
            top=bindparam("q", type_=BigInteger),
        )
    )


class ReportRefused(Exception):
    """A report that is not believed; ``reason`` names the counter it goes to."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _streams_for(kind: TopicKind) -> tuple[str, ...]:
    if kind is TopicKind.AVAILABILITY:
        return (kind.value, WILL_STREAM)
    return (kind.value,)


_ADVANCE = _advance_statement()


class ReportAuthenticator:
    """Opens sealed reports with the device's enrolled key (keys cached per device)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}

    def _load_key(self, session: Session, device_id: str) -> tuple[str, ec.EllipticCurvePublicKey]:
        identity = session.get(DeviceIdentity, device_id, populate_existing=True)
        if identity is None:
            raise ReportRefused("unauthenticated", "device is not enrolled")
        if identity.revoked_at is not None:
            raise ReportRefused("unauthenticated", "device is revoked")
        cached = self._keys.get(device_id)
        if cached is not None and cached[0] == identity.key_id:
            return cached
        try:
            key = public_key_from_pem(identity.public_key_pem.encode("ascii"), what="device key")
            require_p256(key, "the enrolled device key")
        except (KeyFileError, UnicodeEncodeError) as exc:
            raise ReportRefused("unauthenticated", f"stored key is unusable: {exc}") from exc
        self._keys[device_id] = (identity.key_id, key)
        return identity.key_id, key

    def _verify(self, raw: bytes, kid: str, key: ec.EllipticCurvePublicKey) -> Report:
        try:
            return open_report(raw, kid, key)
        except MalformedReport as exc:
            raise ReportRefused("malformed", str(exc)) from exc
        except SignatureError as exc:
            raise ReportRefused("unauthenticated", str(exc)) from exc

    def open(
        self, session: Session, device_id: str, kind: TopicKind, raw: bytes, *, now: datetime
    ) -> Report:
        """The authenticated report, its sequence number recorded; ``ReportRefused`` if not."""
        cached = self._keys.get(device_id)
        try:
            if cached is None:
                raise ReportRefused("unauthenticated", "no key cached")
            kid, report = cached[0], self._verify(raw, *cached)
        except ReportRefused as exc:
            if exc.reason == "malformed":
                raise
            kid, key = self._load_key(session, device_id)  # enrolled anew, or not at all
            report = self._verify(raw, kid, key)
        if report.device_id != device_id or report.stream not in _streams_for(kind):
            raise ReportRefused(
                "unauthenticated",
                f"sealed for {report.device_id}/{report.stream}, not this topic",
            )
        if report.sent_at > now + MAX_FUTURE_SKEW:
            raise ReportRefused(
                "future", f"dated {report.sent_at:%Y-%m-%dT%H:%M:%SZ}, ahead of our clock"
            )
        if not self._advance(session, report, kid):
            self._admit(session, report, kid)
        return report

    def _advance(self, session: Session, report: Report, kid: str) -> bool:
        """The in-order case in one statement: ``seq`` above everything seen so far."""
        params = {"d": report.device_id, "s": report.stream, "k": kid, "q": report.seq}
        result = session.connection().execute(_ADVANCE, params)
        return bool(result.rowcount == 1)

    def _admit(self, session: Session, report: Report, kid: str) -> None:
        """Everything else: a reordered report within the window, a replay, a refusal."""
        key = (report.device_id, report.stream)
        for _ in range(_CAS_TRIES):
            row = session.get(ReportWindow, key, populate_existing=True)
            if row is None or row.key_id != kid:
                self._keys.pop(report.device_id, None)
                raise ReportRefused("unauthenticated", "device is revoked or enrolled anew")
            moved = ReplayWindow(row.top, row.seen).accept(report.seq)
            if moved is None:
                raise ReportRefused(
                    "replayed", f"{report.stream} seq {report.seq} already seen or too old"
                )
            result = session.execute(
                update(ReportWindow)
                .where(
                    col(ReportWindow.device_id) == report.device_id,
                    col(ReportWindow.stream) == report.stream,
                    col(ReportWindow.key_id) == kid,
                    col(ReportWindow.top) == row.top,
                    col(ReportWindow.seen) == row.seen,
                )
                .values(top=moved.top, seen=moved.seen)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return
        raise ReportRefused("replayed", f"{report.stream} window contended; seq {report.seq}")
