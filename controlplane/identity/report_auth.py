"""End-to-end authentication of device reports, independent of the broker.

A report is believed only if it is sealed (``model_store.report_seal``) by the key the
device named by its topic enrolled with, for that topic's stream, not revoked, not dated
beyond ``MAX_CLOCK_SKEW`` ahead of our clock, and with a sequence number its stream's
replay window has not seen.

The device's ``Device`` row holds the key id its reports must be sealed by (None once
revoked) and the replay windows (``report_windows``). ``open`` loads that row with
``FOR UPDATE``, the lock the report's own write takes anyway, checks and moves the window
on it, and the report's write stores it: replicas that share the ingestion never accept
one report twice, and authentication adds no statement to ingestion, only one HMAC (or,
for a device not yet given a report key, one ECDSA verify). A device's keys are cached;
a cached key whose id is no longer the row's (re-enrolled, revoked) is refused and
dropped from the cache, and a report sealed by a key the cache does not know is checked
again against the stored identity (a report key issued since).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from controlplane.identity.tables import DeviceIdentity
from controlplane.models import Device
from model_store import public_key_from_pem
from model_store.errors import KeyFileError, SignatureError
from model_store.keys import require_p256
from model_store.report_key import ReportKey, report_key
from model_store.report_seal import (
    WILL_STREAM,
    DeviceKeys,
    MalformedReport,
    ReplayWindow,
    Report,
    device_keys,
    open_report,
)
from protocol import TopicKind

#: How far ahead of the control plane's clock a report may be dated (device clock skew).
MAX_CLOCK_SKEW = timedelta(minutes=5)


class ReportRefused(Exception):
    """A report that is not believed; ``reason`` names the counter it goes to.

    ``seq`` is the report's sequence number once its seal verified (None before), and
    ``stored`` says a replayed one was seen by the window (so stored before), not too
    old for it to tell."""

    def __init__(
        self, reason: str, message: str, *, seq: int | None = None, stored: bool = False
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.seq = seq
        self.stored = stored


def _streams_for(kind: TopicKind) -> tuple[str, ...]:
    if kind is TopicKind.AVAILABILITY:
        return (kind.value, WILL_STREAM)
    return (kind.value,)


class DeviceRow(Protocol):
    """What authentication reads and moves on a device's row: a ``Device``, or the
    columns the heartbeat batch path loads (``crud.heartbeats.HeartbeatRow``)."""

    key_id: str | None
    report_windows: dict[str, list[int]]


@dataclass(frozen=True)
class Authenticated:
    """A believed report and its device's row, loaded and locked in the caller's
    transaction (the report's write reuses it)."""

    report: Report
    device: DeviceRow
    #: a newer report of its stream was believed before this one (they crossed on the way:
    #: two replicas sharing reports, a resend): what it says about state is out of date
    stale: bool = False


class ReportAuthenticator:
    """Opens sealed reports with the device's enrolled key (keys cached per device)."""

    def __init__(self) -> None:
        self._keys: dict[str, DeviceKeys] = {}

    def report_key(self, device_id: str) -> ReportKey | None:
        """The report key of a device whose report this authenticator opened (cached; None
        if it has none or none of its reports was opened since start-up)."""
        keys = self._keys.get(device_id)
        return keys.mac if keys is not None else None

    def _load_keys(self, session: Session, device_id: str) -> DeviceKeys:
        identity = session.get(DeviceIdentity, device_id)
        if identity is None:
            raise ReportRefused("unauthenticated", "device is not enrolled")
        if identity.revoked_at is not None:
            raise ReportRefused("unauthenticated", "device is revoked")
        try:
            key = public_key_from_pem(identity.public_key_pem.encode("ascii"), what="device key")
            require_p256(key, "the enrolled device key")
            mac = report_key(bytes.fromhex(identity.report_key)) if identity.report_key else None
        except (KeyFileError, UnicodeEncodeError, ValueError) as exc:
            raise ReportRefused("unauthenticated", f"stored key is unusable: {exc}") from exc
        keys = device_keys(key, mac)
        if keys.kid != identity.key_id:
            raise ReportRefused("unauthenticated", "stored key does not match its key id")
        self._keys[device_id] = keys
        return keys

    def _verify(self, raw: bytes, keys: DeviceKeys) -> Report:
        try:
            return open_report(raw, keys)
        except MalformedReport as exc:
            raise ReportRefused("malformed", str(exc)) from exc
        except SignatureError as exc:
            raise ReportRefused("unauthenticated", str(exc)) from exc

    def open(
        self,
        session: Session,
        device_id: str,
        kind: TopicKind,
        raw: bytes,
        *,
        now: datetime,
        locked: Mapping[str, DeviceRow] | None = None,
    ) -> Authenticated:
        """The authenticated report, its sequence number recorded on the device's row
        (locked; stored when the caller commits); ``ReportRefused`` if it is not believed.
        ``locked``: the rows the caller already loaded and locked in ``session`` (a batch;
        a device missing from it is not registered)."""
        cached = self._keys.get(device_id)
        try:
            if cached is None:
                raise ReportRefused("unauthenticated", "no key cached")
            report = self._verify(raw, cached)
        except ReportRefused as exc:
            if exc.reason == "malformed":
                raise
            # enrolled anew, given a report key since, or not enrolled at all
            report = self._verify(raw, self._load_keys(session, device_id))
        kid = report.key_id
        if report.device_id != device_id or report.stream not in _streams_for(kind):
            raise ReportRefused(
                "unauthenticated",
                f"sealed for {report.device_id}/{report.stream}, not this topic",
            )
        if report.sent_at > now + MAX_CLOCK_SKEW:
            raise ReportRefused(
                "future",
                f"dated {report.sent_at:%Y-%m-%dT%H:%M:%SZ}, ahead of our clock",
                seq=report.seq,
            )
        # loaded afresh in the caller's transaction, and locked until it commits
        device: DeviceRow | None
        if locked is not None:
            device = locked.get(device_id)
        else:
            device = session.get(Device, device_id, with_for_update=True)
        if device is None or device.key_id != kid:
            self._keys.pop(device_id, None)
            raise ReportRefused("unauthenticated", "device is revoked or enrolled anew")
        windows = dict(device.report_windows or {})
        top, seen = windows.get(report.stream, (0, 0))
        moved = ReplayWindow(int(top), int(seen)).accept(report.seq)
        if moved is None:
            too_old = report.seq <= int(top) - ReplayWindow.WIDTH - 1
            raise ReportRefused(
                "replayed",
                f"{report.stream} seq {report.seq} "
                + ("too old for the replay window" if too_old else "already seen"),
                seq=report.seq,
                stored=not too_old,
            )
        windows[report.stream] = [moved.top, moved.seen]
        device.report_windows = windows  # a new dict: the JSON column is written
        return Authenticated(report, device, stale=report.seq < int(top))
