"""What ingestion checks of a report beyond its seal, and how it says so.

- ``ahead_by``: a report dated more than ``MAX_CLOCK_SKEW`` ahead of the control
  plane's clock is rejected (the device's clock is wrong, or the report is forged);
- ``FleetClaims``: the fleet a state report names is ignored, logged once per claim (a
  device is in the fleet it enrolled into);
- ``Dropped``: a report counted and logged as not believed or malformed;
- ``one_line``: a database or other error as one log line.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from controlplane.identity.report_auth import MAX_CLOCK_SKEW
from protocol import DeploymentEvent, Heartbeat, StateReport

logger = logging.getLogger("controlplane.ingest")


class Dropped(Exception):
    """A report that was counted and logged as not believed or malformed; ``seq`` is its
    sequence number once its seal verified, ``stored`` says it was stored before."""

    def __init__(self, seq: int | None = None, *, stored: bool = False) -> None:
        super().__init__()
        self.seq = seq
        self.stored = stored


def one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def report_time(message: object) -> datetime | None:
    """When the device says it made ``message`` (None: the message carries no time)."""
    if isinstance(message, StateReport):
        return message.reported_at
    if isinstance(message, DeploymentEvent | Heartbeat):
        return message.at
    return None


def ahead_by(message: object, now: datetime) -> timedelta | None:
    """How far past ``now`` + ``MAX_CLOCK_SKEW`` the message is dated; None if it is not."""
    stamp = report_time(message)
    if stamp is None or stamp <= now + MAX_CLOCK_SKEW:
        return None
    return stamp - now


class FleetClaims:
    """Per device, the other fleet its reports claim: logged once per claim."""

    def __init__(self) -> None:
        self._claims: dict[str, str] = {}

    def check(self, device_id: str, *, claimed: str, fleet: str) -> None:
        """Log (once per claim) a report naming another fleet than the device's."""
        if claimed == fleet:
            self._claims.pop(device_id, None)
            return
        if self._claims.get(device_id) == claimed:
            return
        self._claims[device_id] = claimed
        logger.warning(
            "device %s reports fleet %r but belongs to fleet %r: ignored (a report cannot "
            "move a device; an operator does)",
            device_id,
            claimed,
            fleet,
        )
