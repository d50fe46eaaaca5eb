"""``/blobs/sha256/{hex}``: content-addressed upload and (ranged) download."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, StreamingResponse

from controlplane.deps import SettingsDep, StoreDep
from controlplane.errors import InvalidRequest, NotFound, PayloadTooLarge, Unavailable
from controlplane.ranges import parse_range
from controlplane.schemas import BlobStored
from model_store import ArtifactStore, BlobDigestMismatch, BlobTooLarge, ModelStoreError

router = APIRouter(prefix="/blobs", tags=["blobs"])

Digest = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$", description="sha256, lowercase hex")]
_CHUNK = 256 * 1024
_OCTETS = "application/octet-stream"


async def _store_body(request: Request, store: ArtifactStore, digest: str, limit: int) -> int:
    """Stream the request body into the store in a worker thread; the stored size."""
    body = request.stream()

    async def next_chunk() -> bytes | None:
        try:
            return await anext(body)
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if chunk:
                yield chunk

    def put() -> int:
        _, size = store.put_stream(chunks(), expected_sha256=digest, max_size=limit)
        return int(size)

    try:
        return await anyio.to_thread.run_sync(put)
    except BlobTooLarge as exc:
        raise PayloadTooLarge(f"blob exceeds the {limit}-byte upload limit") from exc
    except BlobDigestMismatch as exc:
        raise InvalidRequest(str(exc)) from exc
    except ModelStoreError as exc:
        raise Unavailable(f"cannot store blob {digest}: {exc}") from exc


@router.put(
    "/sha256/{digest}",
    status_code=201,
    responses={200: {"description": "already stored"}, 400: {"description": "digest mismatch"}},
)
async def put_blob(
    digest: Digest, request: Request, response: Response, store: StoreDep, settings: SettingsDep
) -> BlobStored:
    """Upload raw bytes; the server hashes them and refuses a mismatch.

    The body is always read (and checked), even for a blob already stored, so that a
    client streaming a large body never sees its connection cut mid-upload.
    """
    existed = store.has(digest)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_blob_bytes:
        raise PayloadTooLarge(f"blob exceeds the {settings.max_blob_bytes}-byte upload limit")
    size = await _store_body(request, store, digest, settings.max_blob_bytes)
    if existed:
        response.status_code = 200
    return BlobStored(sha256=digest, size=size, created=not existed)


def _blob_range(store: ArtifactStore, digest: str, start: int, length: int) -> Iterator[bytes]:
    with store.open(digest) as fh:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


_BLOB_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}},
    206: {"description": "partial content (Range)"},
    404: {"description": "unknown blob"},
    416: {"description": "range not satisfiable"},
}


@router.get(
    "/sha256/{digest}",
    response_class=Response,
    responses={
        **_BLOB_ANSWERS,
        307: {"description": "from an object store: a fresh presigned URL of the blob"},
    },
)
@router.head("/sha256/{digest}", response_class=Response, responses=_BLOB_ANSWERS)
def get_blob(digest: Digest, request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """Download a blob; supports ``Range: bytes=a-b | a- | -n``. With an object-store
    blob store a GET is redirected (307) to a presigned URL of the store, which honours
    the same ``Range``: the control plane does not carry the bytes."""
    if not store.has(digest):
        raise NotFound(f"no blob with sha256 {digest}")
    if request.method == "GET" and (url := store.presigned_url(digest, settings.blob_url_ttl)):
        return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
    size = store.size(digest)
    byte_range = parse_range(request.headers.get("range"), size)
    headers = {
        "accept-ranges": "bytes",
        "etag": f'"{digest}"',
        "cache-control": "public, max-age=31536000, immutable",
    }
    if byte_range is None:
        status, start, length = 200, 0, size
    else:
        status, start, length = 206, byte_range[0], byte_range[1] - byte_range[0] + 1
        headers["content-range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{size}"
    headers["content-length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    if length <= _CHUNK:  # one read, here (a stream costs a worker-thread hop per chunk)
        body = b"".join(_blob_range(store, digest, start, length))
        return Response(body, status_code=status, headers=headers, media_type=_OCTETS)
    return StreamingResponse(
        _blob_range(store, digest, start, length),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
