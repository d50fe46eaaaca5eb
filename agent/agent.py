"""The edge agent: wires config, MQTT link, deployment manager, runners, local API and
heartbeats together.

Start order: load the trust document (persisted chain or provisioning file, verified from
the pinned root keys) -> restore the committed models (re-verified; a deployment found
interrupted counts a crash) -> local API -> MQTT link object -> deployment worker (first
resumes an interrupted deployment; what it reports is queued until the link is up) ->
MQTT connection (its on_connect reports the full state) -> heartbeats.
Stop: the local API first (stops accepting, drains in-flight requests), then the rest in
reverse, with a retained ``Availability(online=False)`` before disconnecting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig
from agent.deployment import BlobFetcher, BundleCache, DeploymentManager, GateSettings
from agent.deployment.fit import memory_budget
from agent.errors import AgentError
from agent.identity.model import Identity
from agent.identity.renewal import RenewalLoop
from agent.identity.sealer import ReportSealer
from agent.keeper import Keeper, KeeperSettings
from agent.keeper.child import ChildKeeper
from agent.link.mqtt_link import MqttLink
from agent.runners import available_runners
from agent.runners.heap import keep_request_buffers
from agent.selection import SelectionSettings, Selector
from agent.selection.constraints import unmet_constraints
from agent.selection.host import host_candidates, installed_runtimes
from agent.selection.setup import SelectorSetup
from agent.serving import ServedModels
from agent.serving.fairshare import device_cores
from agent.serving.local_api import LocalApiServer, build_app
from agent.telemetry import HeartbeatLoop
from hw_profiles import fingerprint, probe_host
from model_store.metadata import BundleMetadata
from protocol import (
    ActiveModel,
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    Heartbeat,
    ModelAssignment,
    SelectionReport,
    SignedEnvelope,
    StateReport,
    TopicKind,
)

if TYPE_CHECKING:  # imported when the gRPC server starts (grpcio is heavy)
    import numpy as np

    from agent.serving.grpc_server import GrpcServer

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
        measure_in_child: bool = True,
        keeper_in_child: bool = True,
    ) -> None:
        """``retry_backoff_s``: first and longest delay before a transiently failed
        generation is applied again (the delay doubles in between).
        ``measure_in_child``: backend selection measures in a short-lived child process,
        so that only the winner's runtime is loaded here (``agent.deployment.selecting``);
        False measures in this process (the simulator: its agents share one process).
        ``keeper_in_child``: public-key operations run in a child process started when
        needed (``agent.keeper``), so that ``cryptography`` is never loaded here; False
        runs them in this process (the simulator)."""
        self._measure_in_child = measure_in_child
        self._keeper_in_child = keeper_in_child
        self.config = config
        self._retry_backoff_s = retry_backoff_s
        self.device_id = config.device_id
        self.models = ServedModels()
        self.models.cores = device_cores(config.cpu_threads)
        self.hardware: dict[str, Any] = dict(facts) if facts is not None else {}
        self._probe = facts is None
        #: The matched hw profile and its runtimes, best first (set when the selector is
        #: built at start; reported so the control plane sends the preferred variant).
        self.profile: str | None = None
        self.runtimes: list[str] = []
        self._link: MqttLink | None = None
        self._manager: DeploymentManager | None = None
        self._fetcher: BlobFetcher | None = None
        self._keeper: Keeper | None = None
        self._api: LocalApiServer | None = None
        self._heartbeats: HeartbeatLoop | None = None
        self._renewal: RenewalLoop | None = None
        self._sealer: ReportSealer | None = None
        self.identity: Identity | None = None
        self._report_lock = threading.Lock()
        self.local_api_url: str | None = None
        self._grpc: GrpcServer | None = None
        #: host:port of the local API over gRPC (None: off, ``local_grpc = "off"``)
        self.local_grpc_address: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        # each request's large buffers reused, not faulted in afresh, in few arenas
        # (runners.heap): before the threads that serve start
        if not keep_request_buffers():
            logger.info("heap: no glibc mallopt: request buffers are given back after each")
        try:
            self._fetcher = BlobFetcher(
                cfg.control_plane_url,
                deadline_s=cfg.download_timeout_s,
                stall_s=cfg.download_stall_timeout_s,
            )
            # before the host probe: the keeper's child starts while the probe runs
            self._keeper = keeper = self._open_keeper(self._fetcher)
            if self._probe:
                self.hardware = probe_host().to_dict()
            keeper.open_trust()
            self._sealer = sealer = self._open_identity(keeper)
            cache = BundleCache(
                cfg.data_dir,
                keeper,
                self._fetcher,
                unmet_constraints=self._unmet_constraints,
                disk_reserve_mb=cfg.disk_reserve_mb,
            )
            self._manager = DeploymentManager(
                label=self.device_id,
                device_id=self.device_id,
                data_dir=cfg.data_dir,
                cache=cache,
                models=self.models,
                reporter=self,
                keeper=keeper,
                retry_initial_s=self._retry_backoff_s[0],
                retry_max_s=self._retry_backoff_s[1],
                max_crashes=cfg.max_deploy_crashes,
                gate=GateSettings(runs=cfg.gate_runs, max_latency_ratio=cfg.gate_max_latency_ratio),
                cache_versions=cfg.cache_versions,
                selector=self._selector(),
                memory_budget=memory_budget(cfg.memory_budget_mb, self.hardware),
            )
            self._manager.restore()
            host, port = cfg.local_api_address
            self._api = LocalApiServer(
                build_app(self.models, server_version=AGENT_VERSION, data_dir=cfg.data_dir),
                host,
                port,
                limits=cfg.local_api_limits,
            )
            self.local_api_url = self._api.start()
            self._start_grpc()
            self._link = MqttLink(
                device_id=self.device_id,
                broker=cfg.broker,
                on_desired=self._on_desired,
                on_connected=self.report_state,
                on_trust=self._on_trust,
                spool_path=cfg.data_dir / "spool.sqlite",
                spool_max_entries=cfg.spool_max_entries,
                sealer=sealer,
                identity=self.identity,
            )
            # the worker may report at once (a resumed deployment): the link queues it
            self._manager.start()
            self._link.start()
            self._heartbeats = HeartbeatLoop(
                self.device_id,
                cfg.heartbeat_interval_s,
                self._send_heartbeat,
                data_dir=cfg.data_dir,
                metrics=self.models.metrics,
            )
            self._heartbeats.start()
            if self.identity is not None:
                self._renewal = RenewalLoop(
                    self.identity,
                    renew=keeper.renew,
                    device_id=self.device_id,
                    on_renewed=self._on_renewed,
                )
                self._renewal.start()
        except BaseException:
            self.stop()
            raise
        logger.info("%s: agent started (fleet %s)", self.device_id, cfg.fleet)

    def _start_grpc(self) -> None:
        """Start the local API over gRPC, unless it is off; grpcio is imported only here."""
        address = self.config.local_grpc_address
        if address is None:
            return
        from agent.serving.grpc_server import GrpcServer, InferenceService

        service = InferenceService(self.models, server_version=AGENT_VERSION)
        self._grpc = GrpcServer(service, *address, limits=self.config.local_api_limits)
        self.local_grpc_address = self._grpc.start()

    def stop(self) -> None:
        # first stop accepting local API connections and let in-flight requests finish
        # (the models stay loaded until the end), then the workers, then say offline
        grpc_stopped = self._grpc.stop(wait=False) if self._grpc is not None else None
        if self._api is not None:
            self._api.stop()
        if grpc_stopped is not None:  # both drained at once
            grpc_stopped.wait(11)
            self._grpc = None
        if self._heartbeats is not None:
            self._heartbeats.stop()
        if self._renewal is not None:
            self._renewal.stop()
            self._renewal = None
        if self._manager is not None:
            self._manager.request_stop()
            if self._fetcher is not None:
                self._fetcher.close()  # cuts a download short: resumed at the next start
            if self._keeper is not None:
                self._keeper.close()  # cuts a verification or trust fetch short: retried
            self._manager.stop()
        if self._link is not None:
            self._link.stop()
        if self._fetcher is not None:
            self._fetcher.close()
        if self._keeper is not None:
            self._keeper.close()
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
                selection=SelectionReport.model_validate(m.selection) if m.selection else None,
                memory_bytes=m.memory_bytes,
                priority=m.share.priority if m.share else None,
                threads=m.share.threads if m.share else None,
                concurrency=m.share.concurrency if m.share else None,
            )
            for m in self.models.snapshot()
        ]

    @property
    def retrying(self) -> bool:
        """Whether the last generation failed transiently and is being retried."""
        return self._manager.retrying if self._manager is not None else False

    @property
    def trust_version(self) -> int:
        """Version of the current trust document (0 before there is one)."""
        return self._keeper.trust_version if self._keeper is not None else 0

    @property
    def refused_commands(self) -> int:
        """Deployment commands refused (signature, device, generation, expiry, trust)."""
        return self._manager.refused_commands if self._manager is not None else 0

    @property
    def refused_trust_documents(self) -> int:
        """Trust documents refused (forged, skipping, expired, unavailable version)."""
        return self._keeper.refused_trust if self._keeper is not None else 0

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    @property
    def worker_alive(self) -> bool:
        """Whether the deployment worker thread runs (a systemd watchdog health check)."""
        return self._manager is not None and self._manager.alive

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
            retrying=self.retrying,
            failures=self._manager.failures if self._manager is not None else [],
            local_api=self.local_api_url,
            hardware=self.hardware,
            profile=self.profile,
            runtimes=self.runtimes,
            memory_budget_bytes=self._manager.memory_budget if self._manager else None,
            memory_models_bytes=self._manager.memory_used() if self._manager else None,
            shadows=self.models.shadows.report(),
        )

    # -- inference (in-process API) --------------------------------------------------------

    def infer(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the active model ``name``; ModelNotFound / InvalidInput / InferenceError."""
        return self.models.infer(name, inputs)

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

    def _on_desired(self, envelope: SignedEnvelope) -> None:
        if self._manager is None:
            raise AgentError("deployment command received before the agent started")
        self._manager.submit(envelope)

    def _on_trust(self, raw: bytes) -> None:
        if self._manager is None:
            raise AgentError("trust document received before the agent started")
        self._manager.submit_trust(raw)

    def _on_renewed(self) -> None:
        """A renewed certificate (and maybe a first report key): use both from now on."""
        renewal, link = self._renewal, self._link
        if renewal is None or link is None:
            return  # stopping
        if self._sealer is not None:
            self._sealer.use(renewal.identity)
        link.reload_certificate()

    def _open_keeper(self, fetcher: BlobFetcher) -> Keeper:
        settings = KeeperSettings.of(self.config)
        if self._keeper_in_child:
            child = ChildKeeper(settings)
            child.warm()
            return child
        from agent.keeper.local import LocalKeeper  # imports cryptography: the simulator's

        return LocalKeeper(settings, fetch=fetcher.fetch_document)

    def _open_identity(self, keeper: Keeper) -> ReportSealer | None:
        """The device's identity (enrolling with the configured token if it has none yet)
        and the sealer of its reports; None, with a warning, if it is not enrolled."""
        cfg = self.config
        self.identity = keeper.load_identity()
        if self.identity is None and cfg.enrollment_token is not None:
            self.identity = keeper.enroll(cfg.enrollment_token.get_secret_value())
        if self.identity is None:
            logger.warning(
                "%s: not enrolled: a control plane drops this device's reports; run "
                "`edge-agent enroll --token ...` or set enrollment_token in agent.toml",
                self.device_id,
            )
            return None
        return ReportSealer(
            self.identity, self.device_id, self.identity.directory, keeper.seal_signed
        )

    def _selector(self) -> Selector:
        """Measured selection among this host's candidates (profile of its facts)."""
        cfg = self.config
        profile, candidates = host_candidates(self.hardware)
        self.profile = None if profile == "none" else profile
        self.runtimes = list(dict.fromkeys(c.runtime for c in candidates))
        logger.info(
            "%s: profile %s, candidates %s",
            self.device_id,
            profile,
            ", ".join(c.key for c in candidates),
        )
        return SelectorSetup(
            profile=profile,
            candidates=tuple(candidates),
            fingerprint=fingerprint(self.hardware),
            runtimes=installed_runtimes(),
            data_dir=cfg.data_dir,
            settings=SelectionSettings(
                budget_s=cfg.selection_budget_s, cpu_share=cfg.selection_cpu_share
            ),
        ).build(portable=self._measure_in_child)

    def _unmet_constraints(self, metadata: BundleMetadata) -> list[str]:
        return unmet_constraints(metadata, facts=self.hardware, runners=available_runners())

    def _send_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Heartbeats are the telemetry: QoS 1, spooled while the broker is away."""
        if (link := self._link) is not None:
            beat = heartbeat.model_copy(update=link.spool_figures())
            link.publish(TopicKind.HEARTBEAT, beat, qos=1)
