"""``/models``: register signed model versions and list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from controlplane import crud
from controlplane.bundles import verify_version
from controlplane.deps import SessionDep, StoreDep, TrustDep
from controlplane.errors import NotFound
from controlplane.schemas import (
    MODEL_NAME_PATTERN,
    ModelPublic,
    ModelVersionCreate,
    ModelVersionPublic,
)
from controlplane.views import model_public, version_public

router = APIRouter(prefix="/models", tags=["models"])

ModelName = Annotated[str, PathParam(pattern=MODEL_NAME_PATTERN)]


@router.post(
    "/{name}/versions",
    status_code=201,
    responses={
        200: {"description": "the same version was registered before (idempotent)"},
        400: {"description": "signature, manifest, blobs or metadata rejected"},
        409: {"description": "the version exists with another bundle digest"},
    },
)
def create_version(
    name: ModelName,
    body: ModelVersionCreate,
    response: Response,
    session: SessionDep,
    store: StoreDep,
    trust: TrustDep,
) -> ModelVersionPublic:
    """Register a version whose blobs are uploaded, after verifying its signature against
    the release keys of the current trust document (revoked keys refused)."""
    verified = verify_version(
        store,
        trust.current(session),
        name=name,
        version=body.version,
        signature=body.signature,
        files=body.files,
    )
    version, created = crud.create_model_version(
        session,
        model=name,
        version=body.version,
        bundle_digest=verified.bundle_digest,
        signature=verified.signature,
        files=verified.files,
        metadata=verified.metadata,
        key_id=verified.key_id,
    )
    if not created:
        response.status_code = 200
    return version_public(version)


@router.get("")
def list_models(session: SessionDep) -> list[ModelPublic]:
    return [model_public(m, vs) for m, vs in crud.list_models(session)]


@router.get("/{name}")
def get_model(name: ModelName, session: SessionDep) -> ModelPublic:
    found = crud.list_models(session, name=name)
    if not found:
        raise NotFound(f"unknown model {name!r}")
    return model_public(*found[0])


@router.get("/{name}/versions/{version}")
def get_version(name: ModelName, version: str, session: SessionDep) -> ModelVersionPublic:
    found = crud.get_model_version(session, model=name, version=version)
    if found is None:
        raise NotFound(f"unknown version {version!r} of model {name!r}")
    return version_public(found)
