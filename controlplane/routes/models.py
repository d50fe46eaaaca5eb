"""``/models``: register signed model versions (and further variants of them) and list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from sqlmodel import Session, col, select

from controlplane import crud
from controlplane.bundles import VerifiedVersion, verify_version
from controlplane.commands import CommandSigner, reissue_commands
from controlplane.crud.variants import create_variant, variants_of
from controlplane.deps import PublisherDep, SessionDep, SignerDep, StoreDep, TrustDep
from controlplane.desired import DEFAULT_VARIANT
from controlplane.errors import NotFound
from controlplane.models import Deployment, DeploymentTarget, ModelVersion
from controlplane.publisher import DesiredStatePublisher
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
        200: {"description": "the same version (or variant) was registered before (idempotent)"},
        400: {"description": "signature, manifest, blobs or metadata rejected"},
        404: {"description": "a variant of a version that is not registered"},
        409: {"description": "the version (or variant) exists with another bundle digest"},
    },
)
def create_version(
    name: ModelName,
    body: ModelVersionCreate,
    response: Response,
    session: SessionDep,
    store: StoreDep,
    trust: TrustDep,
    signer: SignerDep,
    publisher: PublisherDep,
) -> ModelVersionPublic:
    """Register a version whose blobs are uploaded, after verifying its signature against
    the release keys of the current trust document (revoked keys refused).

    With ``variant`` (not ``default``) the bundle is a further variant of the existing
    version, verified the same way; devices already given that version whose runtimes
    prefer the new variant get a new command naming it."""
    variant = body.variant if body.variant != DEFAULT_VARIANT else None
    existing = None
    if variant is not None:
        existing = crud.get_model_version(session, model=name, version=body.version)
        if existing is None:
            raise NotFound(
                f"unknown version {body.version!r} of model {name!r}: register its default "
                f"bundle first, then variant {variant!r}"
            )
    verified = verify_version(
        store,
        trust.current(session),
        name=name,
        version=body.version,
        signature=body.signature,
        files=body.files,
    )
    if existing is not None and variant is not None:
        created = _create_variant(session, signer, publisher, existing, variant, verified)
        if not created:
            response.status_code = 200
        return _version_view(session, existing)
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
    return _version_view(session, version)


def _create_variant(
    session: Session,
    signer: CommandSigner,
    publisher: DesiredStatePublisher,
    version: ModelVersion,
    variant: str,
    verified: VerifiedVersion,
) -> bool:
    """Store the variant; if new, re-issue the commands it changes. Whether it was new."""
    _, created = create_variant(
        session,
        version=version,
        variant=variant,
        bundle_digest=verified.bundle_digest,
        signature=verified.signature,
        files=verified.files,
        metadata=verified.metadata,
        key_id=verified.key_id,
    )
    if created:
        deployed = session.exec(
            select(DeploymentTarget.device_id)
            .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
            .where(Deployment.model_version_id == version.id)
            .distinct()
        ).all()
        # Only the devices whose chosen bundle changed are signed a new command.
        reissue_commands(session, signer, publisher, device_ids=list(deployed))
    return created


def _version_view(session: Session, version: ModelVersion) -> ModelVersionPublic:
    assert version.id is not None
    return version_public(
        version, variants_of(session, version_ids=[version.id]).get(version.id, [])
    )


def _models_view(session: Session, name: str | None = None) -> list[ModelPublic]:
    found = crud.list_models(session, name=name)
    ids = [v.id for _, versions in found for v in versions if v.id is not None]
    variants = variants_of(session, version_ids=ids)
    return [model_public(m, vs, variants) for m, vs in found]


@router.get("")
def list_models(session: SessionDep) -> list[ModelPublic]:
    return _models_view(session)


@router.get("/{name}", responses={404: {"description": "unknown model"}})
def get_model(name: ModelName, session: SessionDep) -> ModelPublic:
    found = _models_view(session, name)
    if not found:
        raise NotFound(f"unknown model {name!r}")
    return found[0]


@router.get("/{name}/versions/{version}", responses={404: {"description": "unknown version"}})
def get_version(name: ModelName, version: str, session: SessionDep) -> ModelVersionPublic:
    found = crud.get_model_version(session, model=name, version=version)
    if found is None:
        raise NotFound(f"unknown version {version!r} of model {name!r}")
    return _version_view(session, found)
