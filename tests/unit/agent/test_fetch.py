"""Resumable downloads into staging (``BlobFetcher.fetch_to`` + ``Staging``), against the
real HTTP blob server of the tests: what a fresh fetcher does with the ``.part`` an
earlier run left, servers that answer Range wrongly, corrupt prefixes, and symlinks
planted in staging (never followed)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.deployment import BlobFetcher
from agent.deployment.staging import Staging
from agent.errors import DownloadError, TransientDownloadError
from protocol import FileRef
from tests.support.blobserver import BlobServer

DATA = bytes(range(256)) * 1024  # 256 KiB, every offset distinguishable
HALF = len(DATA) // 2
DIGEST = "ab" * 32  # the bundle digest (a staging directory name)


@pytest.fixture
def server() -> Iterator[BlobServer]:
    with BlobServer() as blobs:
        yield blobs


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _ref(server: BlobServer, data: bytes = DATA, path: str = "model.onnx") -> FileRef:
    return FileRef(path=path, sha256=server.add(data), size=len(data))


def _fetch(server: BlobServer, data_dir: Path, ref: FileRef) -> Path:
    """One run: a NEW fetcher and staging, as after an agent restart; the staged file."""
    fetcher = BlobFetcher(server.url, deadline_s=30, stall_s=5)
    try:
        with Staging(data_dir / "staging", DIGEST) as staging:
            fetcher.fetch_to(ref, staging, fetcher.budget())
    finally:
        fetcher.close()
    return data_dir / "staging" / DIGEST / ref.path


def _leave_part(data_dir: Path, ref: FileRef, content: bytes) -> Path:
    part = data_dir / "staging" / DIGEST / f"{ref.path}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(content)
    return part


def _ranges(server: BlobServer, ref: FileRef) -> list[str | None]:
    return [r for p, r in server.requests if ref.sha256 in p]


def test_a_cut_transfer_resumes_within_one_run(server: BlobServer, data_dir: Path) -> None:
    ref = _ref(server)
    server.cut_once[ref.sha256] = HALF
    staged = _fetch(server, data_dir, ref)
    assert staged.read_bytes() == DATA
    assert _ranges(server, ref) == [None, f"bytes={HALF}-"]
    assert server.served[ref.sha256] == len(DATA)  # no byte sent twice
    assert not staged.with_name("model.onnx.part").exists()


def test_close_cuts_a_transfer_short_and_refuses_the_next(
    server: BlobServer, data_dir: Path
) -> None:
    """The agent stopping closes its fetcher: a transfer waiting on the server ends at
    once, its bytes kept in the ``.part`` for the next start, and nothing new starts."""
    ref = _ref(server)
    server.hold_once[ref.sha256] = HALF
    fetcher = BlobFetcher(server.url, deadline_s=30, stall_s=30)
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            with Staging(data_dir / "staging", DIGEST) as staging:
                fetcher.fetch_to(ref, staging, fetcher.budget())
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=fetch)
    thread.start()
    assert server.holding.wait(10)
    part = data_dir / "staging" / DIGEST / f"{ref.path}.part"
    deadline = time.monotonic() + 10  # what the server sent has reached the .part
    while not (part.exists() and part.stat().st_size == HALF) and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    fetcher.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    (error,) = errors
    assert isinstance(error, TransientDownloadError) and "stopping" in str(error)
    assert part.read_bytes() == DATA[:HALF]
    server.release.set()
    assert _fetch(server, data_dir, ref).read_bytes() == DATA  # resumed by a new fetcher
    assert _ranges(server, ref)[-1] == f"bytes={HALF}-"


def test_a_part_left_by_an_earlier_run_is_resumed(server: BlobServer, data_dir: Path) -> None:
    ref = _ref(server)
    _leave_part(data_dir, ref, DATA[:HALF])
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [f"bytes={HALF}-"]
    assert server.served[ref.sha256] == len(DATA) - HALF  # the prefix was not fetched again


def test_a_complete_staged_file_is_not_downloaded_again(server: BlobServer, data_dir: Path) -> None:
    ref = _ref(server)
    _fetch(server, data_dir, ref)
    _fetch(server, data_dir, ref)
    assert _ranges(server, ref) == [None]


def test_a_complete_staged_file_with_other_bytes_is_replaced(
    server: BlobServer, data_dir: Path
) -> None:
    ref = _ref(server)
    wrong = data_dir / "staging" / DIGEST / ref.path
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(DATA[::-1])  # same size, other bytes
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [None]


def test_a_server_that_ignores_range_restarts_cleanly(server: BlobServer, data_dir: Path) -> None:
    ref = _ref(server)
    _leave_part(data_dir, ref, DATA[:HALF])
    server.range_mode = "ignore"  # 200 and the whole blob
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [f"bytes={HALF}-"]  # the 200 body is used from byte 0


@pytest.mark.parametrize("mode", ["misplaced", "refuse"])
def test_a_misplaced_206_or_a_416_downloads_again_from_zero(
    server: BlobServer, data_dir: Path, mode: str
) -> None:
    ref = _ref(server)
    _leave_part(data_dir, ref, DATA[:HALF])
    server.range_mode = mode  # type: ignore[assignment]
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [f"bytes={HALF}-", None]


def test_a_corrupt_part_is_discarded_and_fetched_again(server: BlobServer, data_dir: Path) -> None:
    ref = _ref(server)
    corrupt = bytearray(DATA[:HALF])
    corrupt[10] ^= 0xFF
    _leave_part(data_dir, ref, bytes(corrupt))
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [f"bytes={HALF}-", None]


def test_a_part_of_full_length_with_wrong_bytes_is_fetched_again(
    server: BlobServer, data_dir: Path
) -> None:
    ref = _ref(server)
    _leave_part(data_dir, ref, DATA[::-1])
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [None]  # nothing left to resume: straight from zero


def test_a_part_longer_than_declared_is_truncated(server: BlobServer, data_dir: Path) -> None:
    ref = _ref(server)
    _leave_part(data_dir, ref, DATA + b"trailing junk")
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert _ranges(server, ref) == [None]


def test_wrong_bytes_after_a_fresh_start_are_refused_once(
    server: BlobServer, data_dir: Path
) -> None:
    ref = _ref(server)
    server.blobs[ref.sha256] = DATA[::-1]  # the server now serves other bytes
    _leave_part(data_dir, ref, DATA[:HALF])
    with pytest.raises(
        DownloadError, match=r"model\.onnx: sha256 differs from the declared digest"
    ):
        _fetch(server, data_dir, ref)
    assert _ranges(server, ref) == [f"bytes={HALF}-", None]  # one fresh try, then refused
    assert not (data_dir / "staging" / DIGEST / ref.path).exists()


# -- symlinks planted in staging are removed, never followed --------------------------


def _victim(tmp_path: Path, content: bytes) -> Path:
    victim = tmp_path / "outside" / "victim.bin"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_bytes(content)
    return victim


def test_a_symlinked_part_is_not_followed(
    server: BlobServer, data_dir: Path, tmp_path: Path
) -> None:
    ref = _ref(server)
    victim = _victim(tmp_path, DATA[:HALF])  # looks like a good prefix
    part = data_dir / "staging" / DIGEST / "model.onnx.part"
    part.parent.mkdir(parents=True)
    part.symlink_to(victim)
    staged = _fetch(server, data_dir, ref)
    assert staged.read_bytes() == DATA and not staged.is_symlink()
    assert _ranges(server, ref) == [None]  # the link's content was not taken as a prefix
    assert victim.read_bytes() == DATA[:HALF]  # neither written nor truncated


def test_a_symlink_under_the_final_name_is_not_trusted(
    server: BlobServer, data_dir: Path, tmp_path: Path
) -> None:
    ref = _ref(server)
    victim = _victim(tmp_path, DATA)  # even with exactly the right bytes
    final = data_dir / "staging" / DIGEST / "model.onnx"
    final.parent.mkdir(parents=True)
    final.symlink_to(victim)
    staged = _fetch(server, data_dir, ref)
    assert not staged.is_symlink() and staged.read_bytes() == DATA
    assert _ranges(server, ref) == [None]
    assert victim.read_bytes() == DATA


def test_symlinked_directories_are_not_followed(
    server: BlobServer, data_dir: Path, tmp_path: Path
) -> None:
    ref = _ref(server, path="weights/model.data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    (data_dir / "staging").mkdir(parents=True)
    (data_dir / "staging" / DIGEST).symlink_to(outside, target_is_directory=True)
    staged = _fetch(server, data_dir, ref)
    assert staged.read_bytes() == DATA
    assert not (data_dir / "staging" / DIGEST).is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]

    # the same one level down, with a link to a directory holding a good prefix
    (outside / "model.data.part").write_bytes(DATA[:HALF])
    staged.unlink()
    staged.parent.rmdir()
    staged.parent.symlink_to(outside, target_is_directory=True)
    assert _fetch(server, data_dir, ref).read_bytes() == DATA
    assert not staged.parent.is_symlink()
    assert (outside / "model.data.part").read_bytes() == DATA[:HALF]
    assert _ranges(server, ref) == [None, None]


def test_prune_keeps_only_signed_paths_and_their_parts(data_dir: Path, tmp_path: Path) -> None:
    victim = _victim(tmp_path, b"outside")
    bundle = data_dir / "staging" / DIGEST
    (bundle / "weights" / "old").mkdir(parents=True)
    (bundle / "weights" / "w.data.part").write_bytes(b"prefix")
    (bundle / "weights" / "stray.bin").write_bytes(b"x")
    (bundle / "model.onnx").write_bytes(b"complete?")
    (bundle / "model.onnx.tmp").write_bytes(b"x")
    (bundle / "labels.txt").symlink_to(victim)  # listed, but a symlink
    (bundle / "linkdir").symlink_to(victim.parent, target_is_directory=True)
    with Staging(data_dir / "staging", DIGEST) as staging:
        staging.prune(["model.onnx", "weights/w.data", "labels.txt"])
    left = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*"))
    assert left == ["model.onnx", "weights", "weights/w.data.part"]
    assert victim.read_bytes() == b"outside"


def test_a_staged_file_is_written_unbuffered(server: BlobServer, data_dir: Path) -> None:
    """What arrived is on disk at once (so a ``kill -9`` leaves it to resume from)."""
    ref = FileRef(path="a.bin", sha256=hashlib.sha256(DATA).hexdigest(), size=len(DATA))
    with Staging(data_dir / "staging", DIGEST) as staging, staging.open_part(ref) as part:
        part.write(DATA[:HALF])
        on_disk = data_dir / "staging" / DIGEST / "a.bin.part"
        assert os.stat(on_disk).st_size == HALF
        assert part.size == HALF


def test_close_cuts_short_a_request_still_waiting_for_its_answer(data_dir: Path) -> None:
    """A server that took the connection and the request but never answers: the agent
    stopping does not wait out the stall timeout (60 s in a real agent)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        fetcher = BlobFetcher(f"http://{host}:{port}", deadline_s=120, stall_s=60)
        ref = FileRef(path="model.onnx", sha256="0" * 64, size=10)
        errors: list[Exception] = []

        def fetch() -> None:
            try:
                fetcher.fetch_bytes(ref, fetcher.budget())
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=fetch)
        thread.start()
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(4096).startswith(b"GET /api/v1/blobs/sha256/")  # then silence
            fetcher.close()
            thread.join(30)
            assert not thread.is_alive()
    (error,) = errors
    assert isinstance(error, TransientDownloadError) and "stopping" in str(error)
