"""``BundleCache.download`` across attempts: a download interrupted in one run is resumed
by a NEW fetcher and cache (as after an agent restart), permanent failures remove the
staged files, transient ones keep them, and a full disk is refused before any request or
cleaned up when it fills mid-transfer. Real signed bundles, the real HTTP blob server,
a real tmpfs for the disk-full case."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.deployment import BlobFetcher, BundleCache
from agent.errors import DownloadError, StorageFull, TransientDownloadError
from agent.keeper.local import TrustedBundles
from model_store import (
    TrustDocument,
    build_bundle,
    load_initial_trust,
    load_private_key,
    load_public_key,
    sign_bundle,
    verify_bundle_trusted,
)
from protocol import FileRef, ModelAssignment
from tests.support.blobserver import BlobServer, assignment_for
from tests.support.downloads import fill, padded_model, small_tmpfs
from tests.support.onnx_models import external_data_model
from tests.support.ports import wait_until
from tests.support.trust import TrustKit, make_trust_kit

PAD = 256 * 1024


@dataclass
class Env:
    tmp: Path
    kit: TrustKit
    trust: TrustDocument
    server: BlobServer
    fetchers: list[BlobFetcher] = field(default_factory=list)

    def assignment(self, version: str = "2.0.0") -> ModelAssignment:
        src = padded_model(self.tmp / f"src-{version}" / "model.onnx", pad_bytes=PAD)
        out = self.tmp / "bundles" / version
        build_bundle(src, out, name="det", version=version)
        sign_bundle(out, load_private_key(self.kit.release_key))
        return assignment_for(self.server, out)

    def cache(self, data_dir: Path, *, deadline_s: float = 30.0) -> BundleCache:
        fetcher = BlobFetcher(self.server.url, deadline_s=deadline_s, stall_s=5.0)
        self.fetchers.append(fetcher)
        return BundleCache(data_dir, TrustedBundles(lambda: self.trust), fetcher)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    kit = make_trust_kit(tmp_path / "trust")
    trust = load_initial_trust(
        kit.trust_file.read_bytes(), [load_public_key(kit.root_pub)], now=datetime.now(UTC)
    )
    with BlobServer() as server:
        env = Env(tmp_path, kit, trust, server)
        yield env
        for fetcher in env.fetchers:
            fetcher.close()


def _model(a: ModelAssignment) -> FileRef:
    return next(f for f in a.files if f.path == "model.onnx")


def _ranges(server: BlobServer, ref: FileRef) -> list[str | None]:
    return [r for p, r in server.requests if ref.sha256 in p]


def test_an_interrupted_download_resumes_in_a_new_cache(env: Env) -> None:
    a = env.assignment()
    model = _model(a)
    half = model.size // 2
    data_dir = env.tmp / "data"
    env.server.hold_once[model.sha256] = half  # half the model, then silence
    with pytest.raises(TransientDownloadError, match="bundle download exceeded 3s"):
        env.cache(data_dir, deadline_s=3.0).download(a)
    staging = data_dir / "staging" / a.bundle_digest
    assert (staging / "model.onnx.part").stat().st_size == half  # kept for the resume

    staged = env.cache(data_dir).download(a)  # a new fetcher and cache: a restarted agent
    assert staged == staging
    assert _ranges(env.server, model) == [None, f"bytes={half}-"]
    assert env.server.served[model.sha256] == model.size  # the prefix was not sent again
    verify_bundle_trusted(staged, env.trust)  # exactly the signed files, every digest
    assert not list(staged.rglob("*.part"))


def test_a_part_in_a_subdirectory_is_resumed(env: Env) -> None:
    src = external_data_model(env.tmp / "src-ext" / "model.onnx")
    out = env.tmp / "bundles" / "ext"
    build_bundle(src, out, name="det", version="2.0.0")
    sign_bundle(out, load_private_key(env.kit.release_key))
    a = assignment_for(env.server, out)
    weights = next(f for f in a.files if f.path == "weights/two_input.data")
    half = weights.size // 2
    data_dir = env.tmp / "data"
    part = data_dir / "staging" / a.bundle_digest / "weights" / "two_input.data.part"
    part.parent.mkdir(parents=True)
    part.write_bytes((out / weights.path).read_bytes()[:half])
    verify_bundle_trusted(env.cache(data_dir).download(a), env.trust)
    assert _ranges(env.server, weights) == [f"bytes={half}-"]


def test_files_the_manifest_does_not_list_are_removed(env: Env) -> None:
    a = env.assignment()
    staging = env.tmp / "data" / "staging" / a.bundle_digest
    (staging / "sub").mkdir(parents=True)
    (staging / "sub" / "stray.bin").write_bytes(b"x")
    (staging / "model.onnx.tmp").write_bytes(b"x")
    verify_bundle_trusted(env.cache(env.tmp / "data").download(a), env.trust)
    assert sorted(p.name for p in staging.iterdir()) == [
        "edgefleet.json",
        "model.onnx",
        "model.sig",
    ]


def test_a_permanent_failure_removes_the_staged_files(env: Env) -> None:
    a = env.assignment()
    model = _model(a)
    data_dir = env.tmp / "data"
    data = env.server.blobs[model.sha256]
    part = data_dir / "staging" / a.bundle_digest / "model.onnx.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    env.server.blobs[model.sha256] = data[::-1]  # the server serves other bytes now
    with pytest.raises(DownloadError, match=r"model\.onnx: sha256 differs"):
        env.cache(data_dir).download(a)
    assert not (data_dir / "staging" / a.bundle_digest).exists()


def test_free_space_is_checked_before_any_request(env: Env) -> None:
    a = env.assignment()
    huge = 1 << 62  # more than any disk here
    files = [f.model_copy(update={"size": huge}) if f.path == "model.onnx" else f for f in a.files]
    a = a.model_copy(update={"files": files, "size": a.size - _model(a).size + huge})
    data_dir = env.tmp / "data"
    with pytest.raises(StorageFull) as caught:
        env.cache(data_dir).download(a)
    message = str(caught.value)
    assert re.fullmatch(
        rf"no space left on device while staging det 2\.0\.0: needs {a.size} bytes, \d+ free",
        message,
    ), message
    assert env.server.requests == []  # not even the signature
    assert not (data_dir / "staging" / a.bundle_digest).exists()


def test_a_disk_that_fills_mid_transfer_leaves_no_partial_files(env: Env) -> None:
    a = env.assignment()
    model = _model(a)
    half = model.size // 2
    with small_tmpfs(env.tmp / "small", "2m") as data_dir:
        installed = data_dir / "models" / "previous" / "model.onnx"
        installed.parent.mkdir(parents=True)
        installed.write_bytes(b"the model that serves now")
        env.server.hold_once[model.sha256] = half
        errors: list[BaseException] = []

        def download() -> None:
            try:
                env.cache(data_dir).download(a)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=download)
        worker.start()
        part = data_dir / "staging" / a.bundle_digest / "model.onnx.part"
        wait_until(lambda: part.is_file() and part.stat().st_size == half, 10, "half staged")
        filler = fill(data_dir)
        env.server.release.set()
        worker.join(20)
        assert not worker.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], StorageFull), errors
        assert re.fullmatch(
            rf"no space left on device while staging det 2\.0\.0: needs {a.size} bytes, \d+ free",
            str(errors[0]),
        ), errors[0]
        assert not (data_dir / "staging" / a.bundle_digest).exists()
        assert installed.read_bytes() == b"the model that serves now"
        filler.unlink()


def test_discard_staging_never_follows_a_symlink(env: Env) -> None:
    a = env.assignment()
    outside = env.tmp / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    data_dir = env.tmp / "data"
    (data_dir / "staging").mkdir(parents=True)
    (data_dir / "staging" / a.bundle_digest).symlink_to(outside, target_is_directory=True)
    cache = env.cache(data_dir)
    cache.discard_staging(a.bundle_digest)
    assert not (data_dir / "staging" / a.bundle_digest).exists()
    assert (outside / "keep.txt").read_text() == "untouched"
