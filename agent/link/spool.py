"""The telemetry spool: a bounded, ordered, on-disk queue of outgoing MQTT messages.

Every QoS 1, non-retained message of the agent (deployment events, heartbeats) is
appended here first and removed only after the control plane acknowledged storing it
(or, for a device without a report key, the broker's PUBACK), so
telemetry survives a long broker outage, a dropped link mid-flush and a ``kill -9``
(see ``agent.link.mqtt_link`` for the sending side).

Storage: one SQLite file (``data_dir/spool.sqlite``), table ``spool(seq, kind,
payload, created_at, report_seq)`` plus ``meta(key, value)`` for the persisted
``dropped``, ``acked`` and ``lost`` counts.

* ``report_seq`` is the sealed report's own sequence number (``model_store.report_seal``)
  when the control plane acknowledges it (the device has a report key): such an entry
  leaves the spool only by ``settle``, when the control plane said it stored it
  (``acked``) or can no longer tell (``lost``), never on the broker's PUBACK. NULL: the
  broker's PUBACK is the end of it (``ack``). Schema 1 files gain the column on open.

* ``seq`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``: SQLite never hands out a sequence
  number twice, even after the table was emptied, so ``seq`` order is append order
  across restarts and a sender's "everything after seq N" cursor never misses a row.
* ``journal_mode=WAL``, ``synchronous=NORMAL``: in WAL mode a commit needs no fsync (the
  WAL is synced at checkpoints), so appending a heartbeat costs a write, not a flush of
  an SD card. A committed append survives the process being killed (``kill -9``); only
  an OS crash or power cut can roll back the last few commits, never corrupt the file.
  ``FULL`` would close that window at one fsync per message; telemetry is not worth it
  (the state a device is in is re-derived and re-reported on every reconnect anyway).
* Bound: at most ``max_entries`` rows. An append beyond it deletes the oldest rows in
  the same transaction and adds their number to ``dropped`` (persisted). A dropped row
  that was already in flight and is acknowledged after all (paho re-sends what it was
  given on reconnect) is taken back off ``dropped``, so the count is what was lost.
* A file SQLite reports as corrupt or not a database (at open, or later) is renamed to
  ``spool.sqlite.corrupt-<utc time>`` with one warning; the spool starts empty. Rows lost
  that way that were known in memory are counted in ``dropped``.

Thread-safe: one connection, every operation under one lock (paho's network thread,
the sender thread, heartbeat and deployment threads all use it). Errors from sqlite3
are raised as ``agent.errors.SpoolError`` (one line).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from agent.errors import SpoolError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: SQLite primary result codes that mean "this file is damaged / not ours"
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0), ('acked', 0), ('lost', 0);
"""
_ADD_REPORT_SEQ = """
ALTER TABLE spool ADD COLUMN report_seq INTEGER;
CREATE INDEX IF NOT EXISTS spool_report_seq ON spool (report_seq);
"""

T = TypeVar("T")


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    kind: str
    payload: bytes
    created_at: float
    #: the sealed report's sequence number, if the control plane acknowledges it
    report_seq: int | None = None


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error); the connection autocommits."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class _Damaged(sqlite3.DatabaseError):
    """The file opened but is not a spool we can trust (failed check, unknown schema)."""


def _entry(row: tuple[int, str, bytes, float, int | None]) -> SpoolEntry:
    seq, kind, payload, created_at, report_seq = row
    report = None if report_seq is None else int(report_seq)
    return SpoolEntry(int(seq), str(kind), bytes(payload), float(created_at), report)


def _is_corrupt(exc: sqlite3.Error) -> bool:
    if isinstance(exc, _Damaged):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _CORRUPT_CODES


class Spool:
    """``Spool(path, max_entries)``: append, peek in order, ack; counts what it drops."""

    def __init__(self, path: Path, max_entries: int) -> None:
        if max_entries < 1:
            raise SpoolError(f"spool {path}: max_entries must be at least 1")
        self.path = Path(path)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._dropped = 0
        self._acked = 0
        self._lost = 0
        self._last_seq = 0  # highest seq ever handed out (kept across a reset)
        self._dropped_upto = 0  # highest seq dropped by this process (0: none)
        with self._lock:
            try:
                self._open()
            except sqlite3.Error as exc:
                if not _is_corrupt(exc):
                    raise SpoolError(f"spool {self.path}: cannot open: {exc}") from exc
                self._reset(exc)

    # -- public surface --------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Entries on disk not acknowledged yet."""
        with self._lock:
            return self._count

    def __len__(self) -> int:
        return self.pending

    @property
    def dropped(self) -> int:
        """Entries deleted unsent because the bound was hit (persisted)."""
        with self._lock:
            return self._dropped

    @property
    def acked(self) -> int:
        """Entries the control plane acknowledged as stored (persisted)."""
        with self._lock:
            return self._acked

    @property
    def lost(self) -> int:
        """Entries the control plane acknowledged as lost (persisted)."""
        with self._lock:
            return self._lost

    def append(self, kind: str, payload: bytes, report_seq: int | None = None) -> int:
        """Store one message at the end; drop the oldest beyond the bound. Its seq.
        ``report_seq``: it leaves only when the control plane acknowledges it."""
        with self._lock:
            return self._guarded("append", lambda: self._append(kind, payload, report_seq))

    def get(self, seqs: list[int]) -> list[SpoolEntry]:
        """The entries still spooled among ``seqs``, oldest first."""
        with self._lock:
            return self._guarded("read", lambda: self._get(seqs))

    def settle(self, stored: list[int], lost: list[int]) -> tuple[int, int]:
        """Remove the entries whose report the control plane stored or lost (by report
        sequence number; unknown ones ignored, stored wins); (acked, lost) removed."""
        if not stored and not lost:
            return 0, 0
        with self._lock:
            return self._guarded("settle", lambda: self._settle(stored, lost))

    def peek(self, n: int, after: int = 0) -> list[SpoolEntry]:
        """Up to ``n`` entries with ``seq > after``, oldest first (nothing is removed)."""
        with self._lock:
            return self._guarded("read", lambda: self._peek(n, after))

    def ack(self, *seqs: int) -> int:
        """Remove acknowledged entries (unknown seqs are ignored); how many went."""
        if not seqs:
            return 0
        with self._lock:
            return self._guarded("ack", lambda: self._ack(seqs))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- internals (lock held) -------------------------------------------------------------

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, 1, SCHEMA_VERSION):
                raise _Damaged(f"unknown spool schema version {version}")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(spool)")}
            if "report_seq" not in columns:
                db.executescript(_ADD_REPORT_SEQ)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Damaged(f"integrity check: {check}")
            self._count = int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            self._dropped = int(meta["dropped"])
            self._acked, self._lost = int(meta["acked"]), int(meta["lost"])
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
            self._last_seq = max(self._last_seq, int(row[0]) if row else 0)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the spool is closed")
        return self._db

    def _guarded(self, what: str, op: Callable[[], T]) -> T:
        """Run ``op``; a damaged file is reset and ``op`` tried once more; SpoolError."""
        try:
            return op()
        except sqlite3.Error as exc:
            if not _is_corrupt(exc):
                raise SpoolError(f"spool {self.path}: cannot {what}: {exc}") from exc
            self._reset(exc)
        try:
            return op()
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: cannot {what}: {exc}") from exc

    def _append(self, kind: str, payload: bytes, report_seq: int | None) -> int:
        db = self._conn()
        excess = self._count + 1 - self.max_entries
        with _transaction(db):
            cur = db.execute(
                "INSERT INTO spool (kind, payload, created_at, report_seq) VALUES (?, ?, ?, ?)",
                (kind, payload, time.time(), report_seq),
            )
            seq = int(cur.lastrowid or 0)
            if excess > 0:
                upto = int(
                    db.execute(
                        "SELECT MAX(seq) FROM (SELECT seq FROM spool ORDER BY seq LIMIT ?)",
                        (excess,),
                    ).fetchone()[0]
                )
                db.execute("DELETE FROM spool WHERE seq <= ?", (upto,))
                db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (excess,))
        self._last_seq = seq
        if excess <= 0:
            self._count += 1
            return seq
        self._dropped += excess
        self._dropped_upto = upto
        if self._dropped == excess or self._dropped % 100 < excess:  # not one line each
            logger.warning(
                "spool full (%d entries): dropped the oldest; %d dropped so far",
                self.max_entries,
                self._dropped,
            )
        return seq

    def _peek(self, n: int, after: int) -> list[SpoolEntry]:
        rows = self._conn().execute(
            "SELECT seq, kind, payload, created_at, report_seq FROM spool WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, n),
        )
        return [_entry(row) for row in rows]

    def _get(self, seqs: list[int]) -> list[SpoolEntry]:
        db = self._conn()
        out = []
        for seq in sorted(set(seqs)):
            row = db.execute(
                "SELECT seq, kind, payload, created_at, report_seq FROM spool WHERE seq = ?",
                (seq,),
            ).fetchone()
            if row is not None:
                out.append(_entry(row))
        return out

    def _settle(self, stored: list[int], lost: list[int]) -> tuple[int, int]:
        db = self._conn()
        counts = []
        with _transaction(db):
            for key, seqs in (("acked", stored), ("lost", lost)):
                cur = db.executemany("DELETE FROM spool WHERE report_seq = ?", [(s,) for s in seqs])
                removed = max(cur.rowcount, 0)
                db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (removed, key))
                counts.append(removed)
        n_acked, n_lost = counts
        self._count = max(self._count - n_acked - n_lost, 0)
        self._acked += n_acked
        self._lost += n_lost
        return n_acked, n_lost

    def _ack(self, seqs: tuple[int, ...]) -> int:
        # an entry dropped while already in flight that the broker then acknowledged was
        # not lost after all: it is taken back off the dropped count (rows <= the last
        # dropped seq are all gone, and each seq is acknowledged once)
        late = sum(1 for seq in seqs if seq <= self._dropped_upto)
        db = self._conn()
        with _transaction(db):
            cur = db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
            if late:
                db.execute(
                    "UPDATE meta SET value = MAX(value - ?, 0) WHERE key = 'dropped'", (late,)
                )
        removed = max(cur.rowcount, 0)
        self._count = max(self._count - removed, 0)
        self._dropped = max(self._dropped - late, 0)
        return removed

    def _reset(self, exc: sqlite3.Error) -> None:
        """Move a damaged file (and its -wal/-shm) aside and start an empty spool."""
        lost = self._count
        if self._db is not None:
            with suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
        except OSError as move_exc:
            raise SpoolError(
                f"spool {self.path} is damaged ({exc}) and cannot be moved aside: "
                f"{move_exc.strerror or move_exc}"
            ) from move_exc
        logger.warning(
            "spool %s is damaged (%s): moved to %s, starting empty", self.path, exc, aside.name
        )
        dropped, last_seq = self._dropped + lost, self._last_seq
        acked, settled_lost = self._acked, self._lost
        try:
            self._open()
            db = self._conn()
            with _transaction(db):  # keep counting from where the damaged file was
                db.execute("UPDATE meta SET value = ? WHERE key = 'dropped'", (dropped,))
                db.execute("UPDATE meta SET value = ? WHERE key = 'acked'", (acked,))
                db.execute("UPDATE meta SET value = ? WHERE key = 'lost'", (settled_lost,))
                if last_seq:
                    db.execute(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES ('spool', ?)", (last_seq,)
                    )
            self._dropped, self._last_seq = dropped, last_seq
            self._acked, self._lost = acked, settled_lost
        except sqlite3.Error as open_exc:
            raise SpoolError(f"spool {self.path}: cannot start anew: {open_exc}") from open_exc
