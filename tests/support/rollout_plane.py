"""The control plane in one process, as the rollout, label and dashboard tests drive it.

``open_plane`` serves the real app (routes, auth, rollout driver, ingester, command
signer) with a real uvicorn and its lifespan; MQTT is the in-memory publisher. ``Plane``
calls the API and plays each simulated device's agent with real protocol messages: it
opens the signed command the control plane published for it (verifying the signature),
reports deployment events and state, and sends heartbeats with inference figures. The
driver is stepped by hand (``Plane.tick``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine

from controlplane.app import create_app
from controlplane.ingest import Ingester
from controlplane.models import utcnow
from controlplane.publisher import MemoryPublisher
from controlplane.rollouts.driver import RolloutDriver
from protocol import (
    ActiveModel,
    DeploymentEvent,
    DesiredState,
    DeviceStatus,
    EventKind,
    Heartbeat,
    ModelMetrics,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import (
    DET_V1_DIGEST,
    DET_V2_DIGEST,
    api_client,
    open_command,
    register_version,
    serve_app,
    settings,
)
from tests.support.identity import SealingIngester
from tests.support.trust import TrustKit

DET_V3_DIGEST = "cc" * 32
DIGESTS = {"1.0.0": DET_V1_DIGEST, "2.0.0": DET_V2_DIGEST, "3.0.0": DET_V3_DIGEST}
BACKEND = "onnxruntime:cpu:fp32"


@dataclass
class Plane:
    """One control plane app and the simulated devices talking to it."""

    http: httpx.Client
    driver: RolloutDriver
    ingester: SealingIngester
    publisher: MemoryPublisher
    kit: TrustKit
    engine: Engine
    #: what each device runs: (version, generation processed)
    running: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    #: each device's fleet, as it last reported it (``f`` unless told otherwise)
    fleets: dict[str, str] = field(default_factory=dict)
    #: the app served (its routes)
    app: FastAPI | None = None

    # -- the API -------------------------------------------------------------------

    def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        response = (
            self.http.post(f"/api/v1{path}", json=body)
            if body is not None
            else (self.http.post(f"/api/v1{path}"))
        )
        assert response.status_code == status, response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = self.http.get(f"/api/v1{path}")
        assert response.status_code == 200, response.text
        return response.json()

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/rollouts/{rollout_id}")
        return result

    def statuses(self, rollout_id: int) -> dict[str, str]:
        return {d["device_id"]: d["status"] for d in self.rollout(rollout_id)["devices"]}

    def tick(self, times: int = 1, *, after_s: float = 0.0) -> None:
        for _ in range(times):
            self.driver.tick(utcnow() + timedelta(seconds=after_s))

    # -- the devices ---------------------------------------------------------------

    def send(self, device_id: str, kind: TopicKind, message: Any) -> None:
        self.ingester.handle(device_topic(device_id, kind), encode(message))

    def report(self, device_id: str, *, fleet: str | None = None, error: str | None = None) -> None:
        """The device's full state; in ``fleet``, else the fleet it reported last."""
        fleet = self.fleets[device_id] = fleet or self.fleets.get(device_id, "f")
        version, generation = self.running.get(device_id, (None, 0))
        active = []
        if version is not None:
            active = [
                ActiveModel(
                    name="det", version=version, bundle_digest=DIGESTS[version], backend=BACKEND
                )
            ]
        report = StateReport(
            device_id=device_id,
            fleet=fleet,
            agent_version="test",
            status=DeviceStatus.IDLE,
            generation=generation,
            active=active,
            last_error=error,
        )
        self.send(device_id, TopicKind.STATE, report)

    def command(self, device_id: str) -> DesiredState | None:
        """The device's latest published command, verified like an agent does."""
        latest = self.publisher.latest(device_id)
        return open_command(latest.raw, self.kit) if latest is not None else None

    def desired_version(self, device_id: str) -> str | None:
        command = self.command(device_id)
        return command.models[0].version if command is not None else None

    def has_news(self, device_id: str) -> bool:
        command = self.command(device_id)
        return command is not None and command.generation > self.running.get(device_id, ("", 0))[1]

    def obey(self, device_id: str, *, fail: str | None = None) -> None:
        """Install the device's latest command (or fail to), reporting as an agent does."""
        command = self.command(device_id)
        assert command is not None, f"{device_id} was sent no command"
        model = command.models[0]
        previous = self.running.get(device_id, (None, 0))[0]
        for kind in (EventKind.RECEIVED, EventKind.FAILED if fail else EventKind.ACTIVATED):
            event = DeploymentEvent(
                device_id=device_id,
                deployment_id=model.deployment_id,
                generation=command.generation,
                model_name=model.name,
                model_version=model.version,
                kind=kind,
                reason=fail if kind is EventKind.FAILED else None,
            )
            self.send(device_id, TopicKind.EVENTS, event)
        self.running[device_id] = (previous if fail else model.version, command.generation)
        self.report(device_id, error=fail)

    def event(self, device_id: str, kind: EventKind, reason: str | None = None) -> None:
        """One deployment event about the device's latest command (e.g. ``retrying``)."""
        command = self.command(device_id)
        assert command is not None, f"{device_id} was sent no command"
        model = command.models[0]
        event = DeploymentEvent(
            device_id=device_id,
            deployment_id=model.deployment_id,
            generation=command.generation,
            model_name=model.name,
            model_version=model.version,
            kind=kind,
            reason=reason,
        )
        self.send(device_id, TopicKind.EVENTS, event)

    def heartbeat(
        self, device_id: str, *figures: tuple[str, int, int, float], at: datetime | None = None
    ) -> None:
        """Figures per version served: (version, requests, errors, p95 ms); sent ``at``
        (by default now)."""
        heartbeat = Heartbeat(
            device_id=device_id,
            at=at or utcnow(),
            cpu_percent=5.0,
            rss_bytes=1,
            mem_total_bytes=2,
            mem_available_bytes=1,
            mem_percent=50.0,
            load_avg=(0.1, 0.1, 0.1),
            uptime_s=10.0,
            models=[
                ModelMetrics(
                    name="det",
                    version=version,
                    backend=BACKEND,
                    requests=requests,
                    errors=errors,
                    p50_ms=p95 / 2,
                    p95_ms=p95,
                    p99_ms=p95 * 1.2,
                )
                for version, requests, errors, p95 in figures
            ],
        )
        self.send(device_id, TopicKind.HEARTBEAT, heartbeat)

    def fleet_on_v1(self, count: int, *, fleet: str = "f", prefix: str = "d") -> list[str]:
        """``count`` devices registered (``d00``, ``d01``… with the default ``prefix``),
        running det 1.0.0 (all at once) with good figures."""
        ids = [f"{prefix}{i:02d}" for i in range(count)]
        for device_id in ids:
            self.report(device_id, fleet=fleet)
        self.post("/deployments", {"model": "det", "version": "1.0.0", "fleet": fleet}, 201)
        for device_id in ids:
            self.obey(device_id)
            self.heartbeat(device_id, ("1.0.0", 500, 0, 10.0))
        return ids

    def healthy_v2(self, device_id: str, *, p95: float = 10.5, errors: int = 0) -> None:
        """The device installs 2.0.0 and serves it as fast as 1.0.0 was."""
        self.obey(device_id)
        self.heartbeat(device_id, ("1.0.0", 500, 0, 10.0), ("2.0.0", 100, errors, p95))

    def start(self, strategy: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        request = {"model": "det", "version": "2.0.0", "fleet": "f"} | body
        if strategy is not None:
            request["strategy"] = strategy
        result: dict[str, Any] = self.post("/rollouts", request, 201)
        return result


@contextmanager
def open_plane(
    workdir: Path,
    kit: TrustKit,
    database_url: str,
    publisher: MemoryPublisher,
    *,
    tick_s: float = 3600.0,
    register: bool = True,
) -> Iterator[Plane]:
    app = create_app(
        settings(
            workdir,
            kit,
            mqtt_url="mqtt://127.0.0.1:1",
            database_url=database_url,
            rollout_tick_s=tick_s,
        ),
        publisher=publisher,
    )
    services = app.state.services
    if register:
        register_version(services.engine, "det", "1.0.0", digest=DET_V1_DIGEST)
        register_version(services.engine, "det", "2.0.0", digest=DET_V2_DIGEST)
        register_version(services.engine, "det", "3.0.0", digest=DET_V3_DIGEST)
    with serve_app(app) as url, api_client(url, timeout=30) as http:
        yield Plane(
            http=http,
            driver=app.state.rollout_driver,
            ingester=SealingIngester(
                Ingester(services.engine, publisher, services.signer),
                services.engine,
                services.device_ca,
            ),
            publisher=publisher,
            kit=kit,
            engine=services.engine,
            app=app,
        )
