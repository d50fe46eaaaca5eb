"""``/deployments``: send a model version to every device of a fleet."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from controlplane import crud
from controlplane.commands import publish_commands
from controlplane.deps import PublisherDep, RowId, SessionDep, SignerDep
from controlplane.schemas import DeploymentCreate, DeploymentCreated, DeploymentPublic
from controlplane.views import deployment_created, list_deployments

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/deployments", tags=["deployments"])


@router.post(
    "",
    status_code=201,
    responses={
        404: {"description": "unknown model, version or fleet"},
        503: {"description": "the trust document does not certify this control plane's key"},
    },
)
def create_deployment(
    body: DeploymentCreate, session: SessionDep, publisher: PublisherDep, signer: SignerDep
) -> DeploymentCreated:
    """Record the deployment, bump each device's generation, publish its signed command.

    An operator rollback is a deployment of an older version: a new, higher generation.
    """
    signer.check_ready(session)
    deployment, version, targets = crud.create_deployment(
        session, model=body.model, version=body.version, fleet=body.fleet
    )
    logger.info(
        "deployment %s: %s %s to fleet %s (%d device(s))",
        deployment.id,
        version.model,
        version.version,
        deployment.fleet,
        len(targets),
    )
    if targets:
        publish_commands(session, signer, publisher, device_ids=[t.device_id for t in targets])
    return deployment_created(deployment, version, targets)


@router.get("")
def get_deployments(session: SessionDep) -> list[DeploymentPublic]:
    return list_deployments(session)


@router.get("/{deployment_id}", responses={404: {"description": "unknown deployment"}})
def get_deployment(deployment_id: RowId, session: SessionDep) -> DeploymentPublic:
    return list_deployments(session, deployment_id=deployment_id)[0]
