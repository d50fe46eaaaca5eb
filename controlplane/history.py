"""Heartbeat history: each device's per-model figures as a time series, kept for a while.

Every heartbeat a control plane applies adds one row per model version it reports to
``heartbeatsample`` (device, model, version, backend, when, requests, errors, p50, p95):
one INSERT per batch of heartbeats (``record``). The figures are as the device reports
them: ``requests`` and ``errors`` count since the version was activated, so the traffic
of an interval is the difference of two samples; p50/p95 are over that same span.

Retention and downsampling (``downsample``, run by ``controlplane.maintenance`` on one
replica at a time):

- samples at full resolution (``resolution_s`` 0) are kept ``raw_s``
  (``EDGEFLEET_HISTORY_RAW_S``, default one day);
- older ones are folded into one sample per device, model, version and ``bucket_s``
  (``EDGEFLEET_HISTORY_BUCKET_S``, default an hour): the last counts of the bucket
  (counts are cumulative, so nothing is lost), the mean p50 and the highest p95;
- folded samples are kept ``keep_s`` (``EDGEFLEET_HISTORY_KEEP_S``, default 30 days).

Indexes: (device, model, at) for a device's history, (at) for retention.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Index, Integer, delete, func, insert, select
from sqlmodel import Field, Session, SQLModel, col

from controlplane import bulk
from protocol import Heartbeat

logger = logging.getLogger(__name__)

RAW_S = 86_400
BUCKET_S = 3_600
KEEP_S = 30 * 86_400


#: BIGINT on PostgreSQL; SQLite numbers rows itself only in an INTEGER PRIMARY KEY
_ID = BigInteger().with_variant(Integer(), "sqlite")


class HeartbeatSample(SQLModel, table=True):
    __table_args__ = (
        Index("ix_heartbeatsample_device_model_at", "device_id", "model", "at"),
        Index("ix_heartbeatsample_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_ID)
    device_id: str = Field(max_length=128)
    model: str = Field(max_length=128)
    version: str = Field(max_length=128)
    backend: str = Field(default="", max_length=256)
    at: datetime = Field(sa_type=DateTime(timezone=True))
    #: 0: as reported; else the width of the bucket it sums up, in seconds
    resolution_s: int = 0
    requests: int = Field(default=0, sa_type=BigInteger)
    errors: int = Field(default=0, sa_type=BigInteger)
    p50_ms: float | None = None
    p95_ms: float | None = None


@dataclass(frozen=True)
class Retention:
    raw_s: int = RAW_S
    bucket_s: int = BUCKET_S
    keep_s: int = KEEP_S

    def __post_init__(self) -> None:
        if not 0 < self.bucket_s <= self.raw_s <= self.keep_s:
            raise ValueError(
                "history retention needs 0 < bucket <= raw retention <= retention, got "
                f"bucket {self.bucket_s}s, raw {self.raw_s}s, retention {self.keep_s}s"
            )


def samples_of(device_id: str, heartbeat: Heartbeat, at: datetime) -> list[dict[str, Any]]:
    """The rows a heartbeat adds (one per model version it reports), placed at ``at``."""
    return [
        {
            "device_id": device_id,
            "model": m.name,
            "version": m.version,
            "backend": m.backend,
            "at": at,
            "resolution_s": 0,
            "requests": m.requests,
            "errors": m.errors,
            "p50_ms": m.p50_ms,
            "p95_ms": m.p95_ms,
        }
        for m in heartbeat.models
    ]


#: the columns ``samples_of`` fills, in the order ``COPY`` takes them
_COLUMNS = (
    "device_id", "model", "version", "backend", "at", "resolution_s", "requests", "errors",
    "p50_ms", "p95_ms",
)  # fmt: skip


def record(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add ``rows`` in the caller's transaction: on PostgreSQL with ``COPY``
    (``controlplane.bulk``), elsewhere one executemany."""
    if not rows:
        return
    connection = session.connection()
    if bulk.fast(connection):
        values = (tuple(row[name] for name in _COLUMNS) for row in rows)
        bulk.copy_rows(connection, "heartbeatsample", _COLUMNS, values)
    else:
        connection.execute(insert(HeartbeatSample.__table__), list(rows))  # type: ignore[attr-defined]


def history(
    session: Session,
    device_id: str,
    *,
    model: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[HeartbeatSample]:
    """A device's samples, oldest first (``model``: that model's only)."""
    query = select(HeartbeatSample).where(col(HeartbeatSample.device_id) == device_id)
    if model is not None:
        query = query.where(col(HeartbeatSample.model) == model)
    if since is not None:
        query = query.where(col(HeartbeatSample.at) >= since)
    query = query.order_by(col(HeartbeatSample.at), col(HeartbeatSample.id)).limit(limit)
    return list(session.exec(query).scalars())  # type: ignore[call-overload]


def recent(
    session: Session, device_id: str, *, since: datetime, limit: int = 5000
) -> list[HeartbeatSample]:
    """A device's newest ``limit`` samples since ``since`` (every model), oldest first."""
    query = (
        select(HeartbeatSample)
        .where(col(HeartbeatSample.device_id) == device_id, col(HeartbeatSample.at) >= since)
        .order_by(col(HeartbeatSample.at).desc(), col(HeartbeatSample.id).desc())
        .limit(limit)
    )
    return list(reversed(session.exec(query).scalars().all()))  # type: ignore[call-overload]


def _bucket_start(at: datetime, bucket_s: int) -> datetime:
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % bucket_s, UTC)


_FOLDED = (
    col(HeartbeatSample.device_id),
    col(HeartbeatSample.model),
    col(HeartbeatSample.version),
    col(HeartbeatSample.backend),
    col(HeartbeatSample.requests),
    col(HeartbeatSample.errors),
    col(HeartbeatSample.p50_ms),
    col(HeartbeatSample.p95_ms),
)


def _fold(raw: Iterable[Any], start: datetime, bucket_s: int) -> list[dict[str, Any]]:
    """One row per (device, model, version) of ``raw`` (one bucket, oldest first)."""
    folded: dict[tuple[str, str, str], dict[str, Any]] = {}
    p50s: dict[tuple[str, str, str], list[float]] = {}
    for device_id, model, version, backend, requests, errors, p50, p95 in raw:
        key = (device_id, model, version)
        row = folded.setdefault(
            key,
            {
                "device_id": device_id,
                "model": model,
                "version": version,
                "at": start,
                "resolution_s": bucket_s,
                "p95_ms": None,
            },
        )
        row["backend"], row["requests"], row["errors"] = backend, requests, errors  # the last
        if p95 is not None:
            row["p95_ms"] = max(row["p95_ms"] or 0.0, p95)
        if p50 is not None:
            p50s.setdefault(key, []).append(p50)
    for key, row in folded.items():
        values = p50s.get(key)
        row["p50_ms"] = sum(values) / len(values) if values else None
    return list(folded.values())


def downsample(
    engine: Engine, retention: Retention, *, now: datetime, max_buckets: int = 24
) -> tuple[int, int]:
    """Fold samples older than the raw retention into buckets (whole buckets, oldest
    first, at most ``max_buckets`` per call, each in a transaction of its own), then drop
    those past the retention; (raw samples folded, samples dropped)."""
    bucket = timedelta(seconds=retention.bucket_s)
    cutoff = _bucket_start(now - timedelta(seconds=retention.raw_s), retention.bucket_s)
    raw_q = col(HeartbeatSample.resolution_s) == 0
    folded = 0
    for _ in range(max_buckets):
        with Session(engine) as session:
            oldest = session.execute(
                select(func.min(HeartbeatSample.at)).where(raw_q)
            ).scalar_one_or_none()
            if oldest is None:
                break
            start = _bucket_start(oldest, retention.bucket_s)
            if start + bucket > cutoff:
                break  # the oldest raw bucket is not all past the raw retention yet
            window = (col(HeartbeatSample.at) >= start) & (col(HeartbeatSample.at) < start + bucket)
            order = (col(HeartbeatSample.at), col(HeartbeatSample.id))
            raw = session.execute(select(*_FOLDED).where(raw_q & window).order_by(*order)).all()
            record(session, _fold(raw, start, retention.bucket_s))
            session.execute(delete(HeartbeatSample).where(raw_q & window))
            session.commit()
            folded += len(raw)
    expired = now - timedelta(seconds=retention.keep_s)
    with Session(engine) as session:
        gone = session.exec(delete(HeartbeatSample).where(col(HeartbeatSample.at) < expired))
        dropped = gone.rowcount
        session.commit()
    if folded or dropped:
        logger.info(
            "heartbeat history: %d sample(s) folded into %ss buckets, %d past retention dropped",
            folded,
            retention.bucket_s,
            dropped,
        )
    return folded, dropped


def count(session: Session) -> int:
    """How many samples are kept (all resolutions)."""
    return int(session.execute(select(func.count()).select_from(HeartbeatSample)).scalar_one())
