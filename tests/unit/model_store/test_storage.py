"""The content-addressed filesystem artifact store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store import (
    ArtifactStore,
    BlobDigestMismatch,
    BlobNotFound,
    BlobTooLarge,
    FilesystemArtifactStore,
    InvalidDigest,
    ModelStoreError,
    StorageError,
)
from tests.support.onnx_models import affine_model

DATA = b"model bytes " * 100_000
DIGEST = hashlib.sha256(DATA).hexdigest()


def _chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


@pytest.fixture
def store(tmp_path: Path) -> FilesystemArtifactStore:
    return FilesystemArtifactStore(tmp_path / "blobs")


def test_is_an_artifact_store(store: FilesystemArtifactStore) -> None:
    assert isinstance(store, ArtifactStore)


def test_put_stream_round_trip(store: FilesystemArtifactStore) -> None:
    assert not store.has(DIGEST)
    assert store.put_stream(_chunks(DATA), expected_sha256=DIGEST) == (DIGEST, len(DATA))
    assert store.has(DIGEST)
    assert store.size(DIGEST) == len(DATA)
    assert store.path(DIGEST) == store.root / "sha256" / DIGEST[:2] / DIGEST[2:]
    with store.open(DIGEST) as handle:
        assert handle.read() == DATA
    assert _files(store.root) == [f"sha256/{DIGEST[:2]}/{DIGEST[2:]}"]


def test_put_is_idempotent_and_needs_no_expected_digest(store: FilesystemArtifactStore) -> None:
    assert store.put_stream([DATA]) == (DIGEST, len(DATA))
    assert store.put_stream(_chunks(DATA, 7)) == (DIGEST, len(DATA))
    assert _files(store.root) == [f"sha256/{DIGEST[:2]}/{DIGEST[2:]}"]


def test_empty_blob(store: FilesystemArtifactStore) -> None:
    empty = hashlib.sha256(b"").hexdigest()
    assert store.put_stream([]) == (empty, 0)
    assert store.size(empty) == 0


def test_digest_mismatch_leaves_nothing_behind(store: FilesystemArtifactStore) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(BlobDigestMismatch, match=f"expected sha256:{wrong}, got sha256:{DIGEST}"):
        store.put_stream(_chunks(DATA), expected_sha256=wrong)
    assert _files(store.root) == []
    assert not store.has(wrong) and not store.has(DIGEST)


def test_size_limit_leaves_nothing_behind(store: FilesystemArtifactStore) -> None:
    with pytest.raises(BlobTooLarge):
        store.put_stream(_chunks(DATA), max_size=len(DATA) - 1)
    assert _files(store.root) == []
    assert store.put_stream(_chunks(DATA), max_size=len(DATA)) == (DIGEST, len(DATA))


def test_failing_source_leaves_nothing_behind(store: FilesystemArtifactStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(broken())
    assert _files(store.root) == []


@pytest.mark.parametrize(
    "bad",
    [
        "../../../../etc/passwd",
        "/" + "a" * 63,
        DIGEST.upper(),
        DIGEST[:-1],
        DIGEST + "0",
        "",
        "z" * 64,
        DIGEST[:2] + "/" + DIGEST[3:],
    ],
)
def test_bad_digests_are_rejected(store: FilesystemArtifactStore, bad: str) -> None:
    for call in (store.path, store.has, store.size, store.open):
        with pytest.raises(InvalidDigest) as info:
            call(bad)
        assert isinstance(info.value, ValueError) and isinstance(info.value, ModelStoreError)
    with pytest.raises(InvalidDigest):
        store.put_stream([b"x"], expected_sha256=bad)
    assert _files(store.root) == []


def test_missing_blob(store: FilesystemArtifactStore) -> None:
    with pytest.raises(BlobNotFound, match=f"sha256:{DIGEST} not found"):
        store.open(DIGEST)
    with pytest.raises(FileNotFoundError):
        store.size(DIGEST)


def test_put_file(store: FilesystemArtifactStore, tmp_path: Path) -> None:
    model = affine_model(tmp_path / "model.onnx")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert store.put_file(model) == (digest, model.stat().st_size)
    assert store.path(digest).read_bytes() == model.read_bytes()
    with pytest.raises(StorageError, match="cannot read"):
        store.put_file(tmp_path / "missing.onnx")
