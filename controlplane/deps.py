"""FastAPI dependencies as ``Annotated`` aliases: what a route may ask for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.commands import CommandSigner
from controlplane.errors import Unavailable
from controlplane.identity.ca import DeviceCA
from controlplane.mqtt_bridge import MqttBridge
from controlplane.publisher import DesiredStatePublisher
from controlplane.settings import ControlPlaneSettings
from controlplane.trust import TrustStore
from model_store import ArtifactStore


@dataclass
class Services:
    """Everything one control-plane process shares between requests (``app.state.services``)."""

    settings: ControlPlaneSettings
    engine: Engine
    store: ArtifactStore
    trust: TrustStore
    signer: CommandSigner
    publisher: DesiredStatePublisher
    bridge: MqttBridge | None = None
    device_ca: DeviceCA | None = None


# Accessors of what the app holds are ``async``: FastAPI runs a plain ``def`` dependency in
# a worker thread, a hop per dependency per request (each blob download paid several).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    """One session per request on the process's engine."""
    with Session(services.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_store(services: ServicesDep) -> ArtifactStore:
    return services.store


async def get_publisher(services: ServicesDep) -> DesiredStatePublisher:
    return services.publisher


async def get_trust(services: ServicesDep) -> TrustStore:
    return services.trust


async def get_signer(services: ServicesDep) -> CommandSigner:
    return services.signer


async def get_device_ca(services: ServicesDep) -> DeviceCA:
    if services.device_ca is None:
        raise Unavailable(
            "device enrollment is not configured on this control plane (EDGEFLEET_DEVICE_CA_KEY)"
        )
    return services.device_ca


async def get_settings(services: ServicesDep) -> ControlPlaneSettings:
    return services.settings


StoreDep = Annotated[ArtifactStore, Depends(get_store)]
PublisherDep = Annotated[DesiredStatePublisher, Depends(get_publisher)]
TrustDep = Annotated[TrustStore, Depends(get_trust)]
SignerDep = Annotated[CommandSigner, Depends(get_signer)]
SettingsDep = Annotated[ControlPlaneSettings, Depends(get_settings)]
DeviceCADep = Annotated[DeviceCA, Depends(get_device_ca)]


#: A row id in a path: a positive 64-bit integer (larger ones are 422, not a database error).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
