"""One light simulated device: the agent's wire code without its models.

What it shares with a real agent (the same code, not a copy):

- identity: enrollment with a one-time token (``agent.identity.enroll``), every report
  sealed (``ReportSealer``), certificate renewal at half its lifetime;
- the MQTT link (``MqttLink``) with its on-disk spool, control-plane acks and reconnect
  backoff, driven by the process's shared ``NetworkLoop`` instead of a thread of its own;
- trust: its own ``TrustStore`` (pinned roots, chain updates from the trust topic);
- commands: ``verify_command`` (signature, device, trust version) and ``admit`` (the
  generation rules and expiry, the accepted generation persisted before acting);
- downloads: ``BlobFetcher`` with the declared sizes, a deadline and every digest
  checked (``LightBundles``: shared verified cache or not).

What it fakes: inference. An assignment that downloaded and verified is "active" at once
(its backend is the operator's pin, else the first candidate its simulated hardware's
profile lists; no selection is measured, so none is reported), and its heartbeats carry
synthetic request figures (``SyntheticTraffic``). It keeps its accepted generation, its
active models, its outcome and the bundles it holds in its data directory
(``state.LightState``), so a restarted simulator refuses replays and resumes where it
was; it has no crash-safe journal of the steps in between (a bundle interrupted
mid-download is downloaded again).

Threads: every call into the link happens on the loop; blocking work (verification,
downloads, enrollment, renewal) runs on the loop's worker pool, one piece at a time per
device (the newest pending command wins, a trust document goes first), so a device never
holds a thread of its own.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.deployment.admission import admit
from agent.deployment.book import Outcome
from agent.deployment.commands import verify_command
from agent.deployment.loading import settled_status
from agent.deployment.retry import Backoff
from agent.errors import (
    CommandRefused,
    DeploymentError,
    TransientDownloadError,
    TrustFetchError,
    TrustStoreError,
    VerificationError,
)
from agent.identity.model import Identity
from agent.link.mqtt_link import MqttLink
from agent.link.network_loop import NetworkLoop
from agent.simulator.light.bundles import LightBundles
from agent.simulator.light.identity import LightIdentity
from agent.simulator.light.state import LightState
from agent.simulator.light.traffic import SyntheticTraffic
from agent.telemetry.heartbeat import heartbeat_of
from agent.telemetry.host import HostFigures
from agent.trust_store import TrustStore
from model_store import Role, TrustDocument
from protocol import (
    ActiveModel,
    BrokerAddress,
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    ModelAssignment,
    SignedEnvelope,
    StateReport,
    TopicKind,
)

logger = logging.getLogger(__name__)

#: What a light device reports as its agent version.
LIGHT_AGENT_VERSION = "light-sim"


@dataclass(frozen=True)
class HostClass:
    """What a light device reports about its (simulated) hardware."""

    facts: dict[str, Any]
    profile: str | None
    runtimes: list[str]
    default_backend: str


@dataclass(frozen=True)
class LightSettings:
    """Shared by every device of a light fleet."""

    fleet: str
    broker: BrokerAddress
    control_plane_url: str
    heartbeat_interval_s: float
    spool_max_entries: int = 10_000
    retry_initial_s: float = 2.0
    retry_max_s: float = 60.0


class LightDevice:
    """One device; ``start`` (on a worker: may enroll) then ``connect``; ``stop``."""

    def __init__(
        self,
        *,
        index: int,
        device_id: str,
        data_dir: Path,
        settings: LightSettings,
        host: HostClass,
        trust: TrustStore,
        bundles: LightBundles,
        network: NetworkLoop,
        traffic: SyntheticTraffic,
    ) -> None:
        self.index = index
        self.device_id = device_id
        self.data_dir = data_dir
        self._settings = settings
        self._host = host
        self.trust = trust
        self._bundles = bundles
        self._network = network
        self.traffic = traffic
        self.link: MqttLink | None = None
        self.identity = LightIdentity(
            device_id,
            data_dir,
            control_plane_url=settings.control_plane_url,
            network=network,
            ca_keys=lambda: trust.ensure().keys_for(Role.DEVICE_CA).values(),
        )
        self._state = LightState.load(data_dir, device_id)
        self._book = self._state.book
        self.status = settled_status(
            serving=bool(self._state.active), failed=self._book.outcome.failed
        )
        for m in self._state.active.values():
            traffic.serve(m.name, m.version, m.backend)
        self.refused_commands = 0
        self._lock = threading.Lock()  # the inbox below
        self._pending_command: SignedEnvelope | None = None
        self._pending_trust: bytes | None = None
        self._busy = False
        self._retry = Backoff(settings.retry_initial_s, settings.retry_max_s)
        self._started_at = time.monotonic()
        self._beat_at = self._started_at
        self._rng = random.Random(index)
        self._stopped = False

    @property
    def active(self) -> dict[str, ActiveModel]:
        """The models it serves, by name."""
        return self._state.active

    # -- lifecycle -------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the link (its spool) and start connecting through the loop."""
        self.link = MqttLink(
            device_id=self.device_id,
            broker=self._settings.broker,
            on_desired=self._on_desired,
            on_connected=self.report_state,
            on_trust=self._on_trust,
            spool_path=self.data_dir / "spool.sqlite",
            spool_max_entries=self._settings.spool_max_entries,
            sealer=self.identity.sealer,
            identity=self.identity.identity,
            network=self._network,
        )
        self.link.start()
        self.identity.keep_renewed(self._renewed)

    def _renewed(self, identity: Identity) -> None:
        if (link := self.link) is not None:
            link.reload_certificate()

    def stop(self) -> None:
        """Say offline and disconnect (from another thread than the loop's)."""
        self._stopped = self.identity.stopped = True
        if self.link is not None:
            self.link.stop()
            self.link = None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def generation(self) -> int:
        return max(self._book.outcome.generation, 0)

    # -- reports (on the loop, or handed to it by the link) ----------------------------------

    def state_report(self) -> StateReport:
        outcome = self._book.outcome
        return StateReport(
            device_id=self.device_id,
            fleet=self._settings.fleet,
            agent_version=LIGHT_AGENT_VERSION,
            status=self.status,
            generation=max(outcome.generation, 0),
            active=list(self.active.values()),
            last_error=outcome.last_error,
            hardware=self._host.facts,
            profile=self._host.profile,
            runtimes=self._host.runtimes,
        )

    def report_state(self) -> None:
        if self.link is not None:
            self.link.publish(TopicKind.STATE, self.state_report(), qos=1, retain=True)

    def heartbeat(self) -> None:
        """One heartbeat: synthetic host and model figures since the last one."""
        if self.link is None:
            return
        now = time.monotonic()
        self.traffic.advance(now - self._beat_at)
        self._beat_at = now
        facts = self._host.facts
        total = int(facts.get("ram_bytes", 8 * 2**30))
        used = 0.2 + 0.1 * self._rng.random()
        host = HostFigures(
            cpu_percent=round(5 + 20 * self._rng.random(), 1),
            rss_bytes=120 * 2**20,
            mem_total_bytes=total,
            mem_available_bytes=int(total * (1 - used)),
            mem_percent=round(100 * used, 1),
            load_avg=(0.3, 0.25, 0.2),
        )
        beat = heartbeat_of(self.device_id, self._started_at, host, self.traffic.metrics())
        beat = beat.model_copy(update=self.link.spool_figures())
        self.link.publish(TopicKind.HEARTBEAT, beat, qos=1)

    def _event(
        self, kind: EventKind, a: ModelAssignment, generation: int, reason: str | None = None
    ) -> None:
        if self.link is None:
            return
        message = DeploymentEvent(
            device_id=self.device_id,
            deployment_id=a.deployment_id,
            generation=generation,
            model_name=a.name,
            model_version=a.version,
            kind=kind,
            reason=reason,
        )
        self.link.publish(TopicKind.EVENTS, message, qos=1)

    # -- the inbox: link callbacks on the loop, work on the pool ---------------------------

    def _on_desired(self, envelope: SignedEnvelope) -> None:
        with self._lock:
            self._pending_command = envelope
        self._kick()

    def _on_trust(self, raw: bytes) -> None:
        with self._lock:
            self._pending_trust = raw
        self._kick()

    def _kick(self) -> None:
        with self._lock:
            if self._busy or self._stopped:
                return
            if self._pending_command is None and self._pending_trust is None:
                return
            self._busy = True
        self._network.submit(self._drain)

    def _drain(self) -> None:
        """On a worker: handle what is pending, trust first, until nothing is."""
        while True:
            with self._lock:
                trust, command = self._pending_trust, self._pending_command
                if trust is not None:
                    self._pending_trust = None
                elif command is not None:
                    self._pending_command = None
                else:
                    self._busy = False
                    return
            try:
                if trust is not None:
                    self._handle_trust(trust)
                elif command is not None:
                    self._handle_command(command)
            except Exception:  # never lose the device to a bug: log it, go on
                logger.exception("%s: handling a message failed", self.device_id)

    def _retry_later(self, envelope: SignedEnvelope) -> float:
        delay = self._retry.next()

        def again() -> None:
            with self._lock:
                if self._pending_command is None:  # a newer command supersedes the retry
                    self._pending_command = envelope
            self._kick()

        self._network.call_later(delay, again)
        return delay

    # -- trust and commands (on a worker) --------------------------------------------------

    def _handle_trust(self, raw: bytes) -> None:
        try:
            self.trust.offer(raw)
        except TrustStoreError as exc:
            logger.warning("%s: trust document not taken: %s", self.device_id, exc)

    def _handle_command(self, envelope: SignedEnvelope) -> None:
        now = datetime.now(UTC)
        try:
            command = verify_command(envelope, trust=self.trust, device_id=self.device_id, now=now)
            if not admit(command, self._book, now=now, persist=self._save, label=self.device_id):
                return
        except CommandRefused as exc:
            self.refused_commands += 1
            previous = self._book.outcome
            self._book.outcome = Outcome(
                previous.generation, f"refused deployment command: {exc}", previous.failed
            )
            logger.warning("%s: refused deployment command: %s", self.device_id, exc)
            self._network.call_soon(self.report_state)
            return
        except (TrustFetchError, OSError) as exc:
            delay = self._retry_later(envelope)
            logger.warning("%s: deployment command postponed %.1fs: %s", self.device_id, delay, exc)
            return
        self._apply(command.desired.generation, command.desired.models, envelope)

    def _apply(
        self, generation: int, assignments: list[ModelAssignment], envelope: SignedEnvelope
    ) -> None:
        logger.info("%s: applying deployment command generation %d", self.device_id, generation)
        failures: list[str] = []
        transient = False
        active = dict(self.active)
        for a in assignments:
            self._network.call_soon(self._event, EventKind.RECEIVED, a, generation)
            current = active.get(a.name)
            backend = a.backend or self._host.default_backend
            if current is not None and (current.bundle_digest, current.backend) == (
                a.bundle_digest,
                backend,
            ):
                continue  # already active (bundle and pin): nothing to do, as a real agent
            self.status = DeviceStatus.DOWNLOADING
            self._network.call_soon(self.report_state)
            try:
                if self._state.holds(a.bundle_digest):  # a version it kept: no download
                    self._bundles.reuse(a, self._current_trust, self.data_dir)
                else:
                    self._bundles.install(a, self._current_trust, self.data_dir)
            except DeploymentError as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                will_retry = isinstance(exc, TransientDownloadError)
                transient = transient or will_retry
                failures.append(f"{a.name} {a.version}: {reason}")
                kind = EventKind.RETRYING if will_retry else EventKind.FAILED
                self._network.call_soon(self._event, kind, a, generation, reason)
                continue
            self._state.hold(a.bundle_digest)
            for kind in (EventKind.DOWNLOADED, EventKind.VERIFIED, EventKind.ACTIVATED):
                self._network.call_soon(self._event, kind, a, generation)
            active[a.name] = ActiveModel(
                name=a.name,
                version=a.version,
                bundle_digest=a.bundle_digest,
                backend=backend,
                deployment_id=a.deployment_id,
                priority=str(a.priority) if a.priority else None,
            )
        wanted = {a.name for a in assignments}
        self._state.active = {name: m for name, m in active.items() if name in wanted}
        self._book.outcome = Outcome(
            generation=generation,
            last_error=failures[0] if failures else None,
            failed=bool(failures),
            retryable=transient,
        )
        self.status = settled_status(serving=bool(self.active), failed=bool(failures))
        self._save()
        self._network.call_soon(self._settled)
        if transient:
            self._retry_later(envelope)
        else:
            self._retry.reset()

    def _settled(self) -> None:
        """On the loop: the synthetic traffic follows the active set; report it."""
        for name in [n for n in self.traffic.serving if n not in self.active]:
            self.traffic.stop(name)
        for m in self.active.values():
            self.traffic.serve(m.name, m.version, m.backend)
        self.report_state()

    def _save(self) -> None:
        self._state.save(self.data_dir)

    def _current_trust(self) -> TrustDocument:
        if (document := self.trust.current) is None:
            raise VerificationError("no trust document to verify bundles with")
        return document
