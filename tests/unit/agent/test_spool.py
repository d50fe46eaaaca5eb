"""The telemetry spool on a real SQLite file: order, bound, ack, reopen, damaged files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from agent.errors import SpoolError
from agent.link.spool import Spool


def _payloads(spool: Spool, n: int = 1000, after: int = 0) -> list[bytes]:
    return [e.payload for e in spool.peek(n, after=after)]


def test_entries_come_back_in_append_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", 100)
    seqs = [spool.append("events" if i % 2 else "heartbeat", f"m{i}".encode()) for i in range(6)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    entries = spool.peek(10)
    assert [e.payload for e in entries] == [f"m{i}".encode() for i in range(6)]
    assert [e.kind for e in entries] == ["heartbeat", "events"] * 3
    assert all(e.created_at > 0 for e in entries)
    assert _payloads(spool, 2) == [b"m0", b"m1"]
    assert _payloads(spool, 10, after=seqs[3]) == [b"m4", b"m5"]
    assert spool.pending == len(spool) == 6  # peek removes nothing
    spool.close()


def test_ack_removes_only_the_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", 100)
    seqs = [spool.append("events", f"m{i}".encode()) for i in range(4)]
    assert spool.ack(seqs[1], seqs[2]) == 2
    assert _payloads(spool) == [b"m0", b"m3"]
    assert spool.ack(seqs[1], 999_999) == 0  # already gone / unknown: ignored
    assert spool.ack() == 0
    assert spool.pending == 2 and spool.dropped == 0
    spool.close()


def test_bound_drops_the_oldest_and_counts_them_persistently(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, 3)
    for i in range(7):
        spool.append("heartbeat", f"m{i}".encode())
    assert _payloads(spool) == [b"m4", b"m5", b"m6"]
    assert spool.pending == 3 and spool.dropped == 4
    spool.close()

    reopened = Spool(path, 3)
    assert reopened.dropped == 4 and reopened.pending == 3
    reopened.append("heartbeat", b"m7")
    assert _payloads(reopened) == [b"m5", b"m6", b"m7"] and reopened.dropped == 5
    reopened.close()

    smaller = Spool(path, 1)  # a lower bound in the config applies at the next append
    smaller.append("heartbeat", b"m8")
    assert _payloads(smaller) == [b"m8"] and smaller.dropped == 8
    smaller.close()


def test_a_dropped_entry_acknowledged_after_all_is_not_counted_as_lost(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", 2)
    in_flight = spool.append("heartbeat", b"m0")  # handed to paho, then the link drops
    spool.append("heartbeat", b"m1")
    spool.append("heartbeat", b"m2")  # the bound drops m0 ...
    assert spool.dropped == 1 and _payloads(spool) == [b"m1", b"m2"]
    assert spool.ack(in_flight) == 0  # ... but paho re-sent it and the broker acked it
    assert spool.dropped == 0 and spool.pending == 2
    spool.close()
    reopened = Spool(tmp_path / "spool.sqlite", 2)
    assert reopened.dropped == 0
    reopened.close()


def test_entries_survive_a_process_that_never_closed_the_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    writer = Spool(path, 100)  # never closed: as after kill -9, only commits count
    for i in range(3):
        writer.append("events", f"m{i}".encode())
    reader = Spool(path, 100)
    assert _payloads(reader) == [b"m0", b"m1", b"m2"]
    reader.close()
    writer.close()


def test_sequence_numbers_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, 100)
    last = max(spool.append("events", b"x") for _ in range(3))
    spool.ack(*(e.seq for e in spool.peek(10)))
    spool.close()
    reopened = Spool(path, 100)
    assert reopened.pending == 0
    assert reopened.append("events", b"y") > last  # a sender's cursor never misses it
    reopened.close()


def test_a_file_that_is_not_a_database_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.sqlite"
    path.write_bytes(b"this is not SQLite " * 500)
    spool = Spool(path, 10)
    assert spool.pending == 0 and spool.dropped == 0
    spool.append("events", b"fresh")
    assert _payloads(spool) == [b"fresh"]
    aside = list(tmp_path.glob("spool.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not SQLite")
    warnings = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    spool.close()


def test_damaged_pages_are_detected_at_open(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, 1000)
    for i in range(300):
        spool.append("heartbeat", f"{i:04d}".encode() * 50)
    spool.close()  # checkpoints the WAL into the main file
    raw = bytearray(path.read_bytes())
    page = 4096
    assert len(raw) > 4 * page
    raw[2 * page : len(raw) - page] = b"\xa5" * (len(raw) - 3 * page)  # keep the header
    path.write_bytes(bytes(raw))
    reopened = Spool(path, 1000)
    assert reopened.pending == 0
    assert len(list(tmp_path.glob("spool.sqlite.corrupt-*"))) == 1
    reopened.append("events", b"after")
    assert _payloads(reopened) == [b"after"]
    reopened.close()


def test_a_spool_of_a_newer_schema_is_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    spool = Spool(path, 10)
    assert spool.pending == 0 and len(list(tmp_path.glob("spool.sqlite.corrupt-*"))) == 1
    spool.close()


def test_sqlite_errors_are_one_line_spool_errors(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="cannot open") as info:
        Spool(tmp_path / "missing-dir" / "spool.sqlite", 10)
    assert "\n" not in str(info.value)
    with pytest.raises(SpoolError, match="at least 1"):
        Spool(tmp_path / "spool.sqlite", 0)
    spool = Spool(tmp_path / "spool.sqlite", 10)
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append("events", b"late")


def test_concurrent_appends_and_acks_stay_consistent(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", 10_000)
    per_thread, threads = 200, 4

    def produce(t: int) -> None:
        for i in range(per_thread):
            spool.append("heartbeat", f"{t}:{i}".encode())

    acked: list[int] = []

    def consume() -> None:
        while len(acked) < per_thread * threads:
            batch = spool.peek(50, after=acked[-1] if acked else 0)
            spool.ack(*(e.seq for e in batch))
            acked.extend(e.seq for e in batch)

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    consumer = threading.Thread(target=consume)
    for w in [*workers, consumer]:
        w.start()
    for w in [*workers, consumer]:
        w.join(60)
    assert not consumer.is_alive()
    assert acked == sorted(acked) and len(set(acked)) == per_thread * threads
    assert spool.pending == 0 and spool.dropped == 0
    spool.close()


def test_reports_leave_only_when_the_control_plane_settles_them(tmp_path: Path) -> None:
    """Issue 13.4: an entry with a report seq is removed by the control plane's ack (by
    report seq), counted as acked or lost, persistently; stored wins over lost."""
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, 100)
    seqs = [spool.append("heartbeat", f"m{i}".encode(), report_seq=100 + i) for i in range(5)]
    assert [e.report_seq for e in spool.peek(10)] == [100, 101, 102, 103, 104]
    assert spool.settle([100, 101, 999], [102, 101]) == (2, 1)
    assert [e.report_seq for e in spool.get([seqs[0], seqs[3], seqs[4]])] == [103, 104]
    assert (spool.pending, spool.acked, spool.lost) == (2, 2, 1)
    spool.close()
    reopened = Spool(path, 100)
    assert (reopened.pending, reopened.acked, reopened.lost) == (2, 2, 1)
    reopened.close()


def test_a_schema_1_spool_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        " payload BLOB NOT NULL, created_at REAL NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('dropped', 3);"
        "INSERT INTO spool (kind, payload, created_at) VALUES ('events', x'6f6c64', 1.0);"
        "PRAGMA user_version = 1;"
    )
    db.close()
    spool = Spool(path, 10)
    [old] = spool.peek(10)
    assert (old.payload, old.report_seq, spool.dropped, spool.acked) == (b"old", None, 3, 0)
    spool.append("events", b"new", report_seq=7)
    assert spool.settle([7], []) == (1, 0) and spool.pending == 1
    spool.close()
    assert not list(tmp_path.glob("spool.sqlite.corrupt-*"))
