"""The edge agent: wires config, MQTT link, deployment manager, runners, local API and
heartbeats together.

Start order: restore the persisted models (re-verified) -> local API -> deployment worker
-> MQTT link (its on_connect reports the full state) -> heartbeats. Stop in reverse, with
a retained ``Availability(online=False)`` before disconnecting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from types import TracebackType
from typing import Any

import numpy as np

from agent.config import AgentConfig
from agent.deployment import BlobFetcher, BundleCache, DeploymentManager
from agent.errors import AgentConfigError, AgentError
from agent.local_api import LocalApiServer, build_app
from agent.mqtt_link import MqttLink
from agent.serving import ServedModels
from agent.telemetry import HeartbeatLoop
from hw_profiles import probe_host
from model_store import ModelStoreError, load_trusted_keys
from protocol import (
    ActiveModel,
    DeploymentEvent,
    DesiredState,
    DeviceStatus,
    EventKind,
    Heartbeat,
    ModelAssignment,
    StateReport,
    TopicKind,
)

logger = logging.getLogger(__name__)

try:
    AGENT_VERSION = importlib_metadata.version("edgefleet")
except importlib_metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    AGENT_VERSION = "0.0.0"


class Agent:
    """One device. ``start()`` / ``stop()``; also a context manager."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        facts: dict[str, Any] | None = None,
        retry_backoff_s: tuple[float, float] = (2.0, 60.0),
    ) -> None:
        """``retry_backoff_s``: first and longest delay before a transiently failed
        generation is applied again (the delay doubles in between)."""
        self.config = config
        self._retry_backoff_s = retry_backoff_s
        self.device_id = config.device_id
        self.models = ServedModels()
        self.hardware: dict[str, Any] = dict(facts) if facts is not None else {}
        self._probe = facts is None
        self._link: MqttLink | None = None
        self._manager: DeploymentManager | None = None
        self._fetcher: BlobFetcher | None = None
        self._api: LocalApiServer | None = None
        self._heartbeats: HeartbeatLoop | None = None
        self._report_lock = threading.Lock()
        self.local_api_url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        if self._probe:
            self.hardware = probe_host().to_dict()
        try:
            keys = load_trusted_keys(cfg.trusted_keys)
        except ModelStoreError as exc:
            raise AgentConfigError(f"trusted_keys: {exc}") from exc
        try:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentConfigError(f"data_dir {cfg.data_dir}: {exc.strerror or exc}") from exc
        try:
            self._fetcher = BlobFetcher(cfg.control_plane_url, deadline_s=cfg.download_timeout_s)
            cache = BundleCache(cfg.data_dir, keys, self._fetcher)
            self._manager = DeploymentManager(
                label=self.device_id,
                data_dir=cfg.data_dir,
                cache=cache,
                models=self.models,
                reporter=self,
                retry_initial_s=self._retry_backoff_s[0],
                retry_max_s=self._retry_backoff_s[1],
            )
            self._manager.restore()
            host, port = cfg.local_api_address
            self._api = LocalApiServer(
                build_app(self.models, server_version=AGENT_VERSION), host, port
            )
            self.local_api_url = self._api.start()
            self._manager.start()
            self._link = MqttLink(
                device_id=self.device_id,
                broker=cfg.broker,
                on_desired=self._on_desired,
                on_connected=self.report_state,
            )
            self._link.start()
            self._heartbeats = HeartbeatLoop(
                self.device_id, cfg.heartbeat_interval_s, self._send_heartbeat
            )
            self._heartbeats.start()
        except BaseException:
            self.stop()
            raise
        logger.info("%s: agent started (fleet %s)", self.device_id, cfg.fleet)

    def stop(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.stop()
        if self._manager is not None:
            self._manager.stop()
        if self._link is not None:
            self._link.stop()
        if self._api is not None:
            self._api.stop()
        if self._fetcher is not None:
            self._fetcher.close()
        self.models.clear()
        self._heartbeats = self._manager = self._link = self._api = self._fetcher = None
        logger.info("%s: agent stopped", self.device_id)

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------------

    @property
    def status(self) -> DeviceStatus:
        return self._manager.status if self._manager is not None else DeviceStatus.IDLE

    @property
    def generation(self) -> int:
        return self._manager.generation if self._manager is not None else -1

    @property
    def last_error(self) -> str | None:
        return self._manager.last_error if self._manager is not None else None

    @property
    def active(self) -> list[ActiveModel]:
        return [
            ActiveModel(
                name=m.name,
                version=m.version,
                bundle_digest=m.bundle_digest,
                backend=m.backend,
                deployment_id=m.deployment_id,
            )
            for m in self.models.snapshot()
        ]

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    @property
    def malformed_messages(self) -> int:
        return self._link.malformed_messages if self._link is not None else 0

    def wait_connected(self, timeout: float) -> bool:
        return self._link is not None and self._link.wait_connected(timeout)

    def state_report(self) -> StateReport:
        return StateReport(
            device_id=self.device_id,
            fleet=self.config.fleet,
            agent_version=AGENT_VERSION,
            status=self.status,
            generation=max(self.generation, 0),
            active=self.active,
            last_error=self.last_error,
            local_api=self.local_api_url,
            hardware=self.hardware,
        )

    # -- inference (in-process API) --------------------------------------------------------

    def infer(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the active model ``name``; ModelNotFound / InvalidInput / InferenceError."""
        with self.models.use(name) as model:
            return model.infer(inputs)

    # -- Reporter (called by the deployment manager) and link callbacks --------------------

    def report_state(self) -> None:
        """Publish the full StateReport (retained, QoS 1)."""
        with self._report_lock:
            if self._link is not None:
                self._link.publish(TopicKind.STATE, self.state_report(), qos=1, retain=True)

    def state_changed(self) -> None:
        self.report_state()

    def event(
        self,
        kind: EventKind,
        assignment: ModelAssignment,
        generation: int,
        reason: str | None = None,
    ) -> None:
        if self._link is None:
            return
        message = DeploymentEvent(
            device_id=self.device_id,
            deployment_id=assignment.deployment_id,
            generation=generation,
            model_name=assignment.name,
            model_version=assignment.version,
            kind=kind,
            reason=reason,
        )
        self._link.publish(TopicKind.EVENTS, message, qos=1)

    def _on_desired(self, desired: DesiredState) -> None:
        if self._manager is None:
            raise AgentError("desired state received before the agent started")
        self._manager.submit(desired)

    def _send_heartbeat(self, heartbeat: Heartbeat) -> None:
        if self._link is not None:
            self._link.publish(TopicKind.HEARTBEAT, heartbeat, qos=0)
