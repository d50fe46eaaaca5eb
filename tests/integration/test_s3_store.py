"""The S3 blob store against a real S3 protocol server (moto's standalone server, over
HTTP on loopback, driven with boto3):

1. ``S3ArtifactStore`` keeps blobs by digest with the filesystem store's contract (a
   mismatch or an oversized upload leaves nothing, a second upload is a no-op) and its
   presigned URLs serve the bytes, ranges included;
2. a gated rollout over light devices completes with the control plane's blobs in the
   bucket: every device downloads the model from the bucket with the presigned URL of its
   signed command, and none through the control plane;
3. the control plane's blob URL redirects to a fresh presigned URL, and a device whose
   URL fails (refused, unreachable) downloads through it, from the byte it had.

moto does not enforce a presigned URL's expiry or signature (AWS and MinIO answer 403);
an expired URL takes the same fallback as the refused one tested here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.deployment import BlobFetcher
from model_store.errors import BlobDigestMismatch, BlobNotFound, BlobTooLarge, StorageError
from model_store.s3_storage import S3ArtifactStore
from protocol import FileRef
from tests.support.fleet import FleetStack, open_fleet
from tests.support.ports import free_port
from tests.support.s3 import CREDENTIALS, S3Server, run_s3

pytestmark = pytest.mark.integration

COUNT = 12
V1 = "1.0.0"
GATE = {"latency_pct": 100.0, "latency_floor_ms": 25.0, "min_requests": 10}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ef-s3-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(workdir: Path) -> Iterator[S3Server]:
    with run_s3(workdir / "s3") as server:
        yield server


@pytest.fixture(scope="module")
def stack(workdir: Path, s3: S3Server) -> Iterator[FleetStack]:
    env = s3.controlplane_env(prefix="fleet/blobs")
    with open_fleet(workdir / "fleet", count=COUNT, light=True, cp_env=env) as fleet:
        fleet.push(V1, scale=1.0)
        created = fleet.create_rollout(V1, {"canary": 2, "batches": 2, "gate": GATE})
        done = fleet.wait_state(created["id"], "completed", timeout=120)
        assert done["counts"]["activated"] == COUNT, done
        yield fleet


def _store(s3: S3Server, prefix: str) -> S3ArtifactStore:
    os.environ.update(CREDENTIALS)  # boto3's usual chain, as the control plane reads it
    return S3ArtifactStore.connect(s3.url(prefix), endpoint_url=s3.endpoint)


def _keys(s3: S3Server, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _model_ref(stack: FleetStack) -> FileRef:
    response = stack.http.get(f"/api/v1/models/{stack.model}/versions/{V1}")
    assert response.status_code == 200, response.text
    (ref,) = [FileRef(**f) for f in response.json()["files"] if f["path"].endswith(".onnx")]
    return ref


def test_the_s3_store_keeps_blobs_by_digest(s3: S3Server) -> None:
    store = _store(s3, "contract")
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    assert store.put_stream([data[:1000], data[1000:]], expected_sha256=digest) == (
        digest,
        len(data),
    )
    assert _keys(s3, "contract/") == [f"contract/sha256/{digest[:2]}/{digest[2:]}"]
    assert store.has(digest) and store.size(digest) == len(data)
    with store.open(digest) as stream:
        assert stream.read() == data
    assert store.put_stream([data]) == (digest, len(data))  # again: a no-op

    other = os.urandom(1000)
    with pytest.raises(BlobDigestMismatch):
        store.put_stream([other], expected_sha256=digest.replace(digest[0], "0", 1))
    with pytest.raises(BlobTooLarge):
        store.put_stream([other, other], max_size=1500)
    assert len(_keys(s3, "contract/")) == 1  # neither left anything
    missing = hashlib.sha256(other).hexdigest()
    assert not store.has(missing)
    with pytest.raises(BlobNotFound):
        store.open(missing)

    url = store.presigned_url(digest, 60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    ranged = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert ranged.status_code == 206 and ranged.content == data[1000:]

    with pytest.raises(StorageError, match="there is no bucket 'nosuch'"):
        S3ArtifactStore.connect("s3://nosuch/x", endpoint_url=s3.endpoint)
    with pytest.raises(StorageError, match="cannot use blob store") as refused:
        S3ArtifactStore.connect(s3.url(), endpoint_url=f"http://127.0.0.1:{free_port()}")
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in str(refused.value)


def test_devices_download_from_the_bucket_with_their_commands_urls(
    stack: FleetStack, s3: S3Server
) -> None:
    ref = _model_ref(stack)
    key = f"fleet/blobs/sha256/{ref.sha256[:2]}/{ref.sha256[2:]}"
    assert key in _keys(s3, "fleet/blobs/")
    # each device asked the bucket for the model itself (the process shares one copy) ...
    assert s3.gets(key) == COUNT
    # ... and none asked the control plane
    log = stack.cp.log.read_text(errors="replace")
    assert not re.search(rf"GET /api/v1/blobs/sha256/{ref.sha256}", log)
    assert stack.fleet.versions(stack.model) == dict.fromkeys(stack.fleet.device_ids, V1)


def test_the_blob_url_redirects_and_a_failed_url_falls_back(
    stack: FleetStack, s3: S3Server
) -> None:
    ref = _model_ref(stack)
    blob = f"/api/v1/blobs/sha256/{ref.sha256}"
    head = stack.http.head(blob)
    assert head.status_code == 200 and int(head.headers["content-length"]) == ref.size
    moved = stack.http.get(blob)
    assert moved.status_code == 307 and moved.headers["location"].startswith(s3.endpoint)
    assert moved.headers["cache-control"] == "no-store"
    body = httpx.get(moved.headers["location"]).content
    assert hashlib.sha256(body).hexdigest() == ref.sha256

    good = stack.http.get(blob).headers["location"]
    refused = good.replace(f"/{s3.bucket}/", "/no-such-bucket/")  # 404 from the store
    unreachable = f"http://127.0.0.1:{free_port()}/x"
    fetcher = BlobFetcher(stack.cp.url, deadline_s=30, stall_s=5)
    try:
        for url in (refused, unreachable):
            before = s3.gets(ref.sha256[2:])
            got = fetcher.fetch_bytes(
                ref.model_copy(update={"url": url}), fetcher.budget(), max_size=ref.size
            )
            assert hashlib.sha256(got).hexdigest() == ref.sha256
            assert s3.gets(ref.sha256[2:]) == before + 1  # through the redirect
    finally:
        fetcher.close()
    assert re.search(r'"GET /no-such-bucket/[^ ]* HTTP/1.1" 404', s3.requests())
