"""A light simulated fleet: many ``LightDevice`` s in one process, on one event loop.

``LightFleet(count=1000, ...)`` makes devices ``{prefix}-{fleet}-{i:03d}`` for ``i`` in
``first_index .. first_index + count - 1`` (the same names and the same latency-knob
indices as ``SimulatedFleet``, so a mixed fleet numbers its full agents first and its
light devices after them). Their simulated hardware cycles through the same three boxes
(``agent.simulator.fleet.fake_facts``).

All devices share one ``NetworkLoop`` (one thread for every MQTT connection, timers and
heartbeats), one small worker pool for blocking work, one ``BlobFetcher`` (its HTTP
connection pool; every device still makes its own requests) and, unless
``shared_cache=False``, one verified bundle cache (``LightBundles``).

Making one checks that the process may open enough files (``agent.simulator.capacity.
raise_file_limit``). ``start()`` loads or enrolls every device on the worker pool, then
connects them all; it returns once every device has been asked to
connect (``wait_connected`` waits for the broker's answers).
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from agent.deployment.fetch import BlobFetcher
from agent.errors import AgentConfigError
from agent.link.network_loop import DEFAULT_WORKERS, NetworkLoop
from agent.simulator.capacity import raise_file_limit
from agent.simulator.fleet import FAKE_HOST_KINDS, fake_facts
from agent.simulator.latency import LatencyKnob, SlowRule, knob_of
from agent.simulator.light.bundles import LightBundles
from agent.simulator.light.device import HostClass, LightDevice, LightSettings
from agent.simulator.light.traffic import SyntheticTraffic
from agent.trust_store import TrustStore
from hw_profiles import HwProfilesError, eligible_candidates, match_profile
from model_store import ModelStoreError, load_trusted_keys
from protocol import ProtocolError, parse_broker_url

logger = logging.getLogger(__name__)

#: How long a light device's bundle download may take in all, and may stall.
DOWNLOAD_DEADLINE_S = 600.0
DOWNLOAD_STALL_S = 60.0
#: The default synthetic traffic per device and active model.
DEFAULT_TRAFFIC_HZ = 5.0


@functools.cache
def _host_class(kind: int) -> HostClass:
    facts = fake_facts(kind)
    try:
        profile = match_profile(facts)
        candidates = list(eligible_candidates(profile, facts))
        name: str | None = profile.name
    except HwProfilesError:
        candidates, name = [], None
    runtimes = list(dict.fromkeys(c.runtime for c in candidates))
    default = candidates[0].key if candidates else "onnxruntime:cpu"
    return HostClass(facts=facts, profile=name, runtimes=runtimes, default_backend=default)


def host_class(index: int) -> HostClass:
    """The simulated hardware of device ``index`` and what its profile prefers."""
    return _host_class(index % FAKE_HOST_KINDS)


class LightFleet:
    """``count`` light devices in this process. ``start()`` / ``stop()``; a context manager."""

    def __init__(
        self,
        *,
        count: int,
        fleet: str,
        broker_url: str,
        control_plane_url: str,
        data_dir: str | Path,
        root_keys: Sequence[str | Path],
        trust_file: str | Path | None = None,
        id_prefix: str = "sim",
        first_index: int = 0,
        heartbeat_interval_s: float = 30.0,
        latency_ms: LatencyKnob | Sequence[SlowRule] | None = None,
        traffic_hz: float = DEFAULT_TRAFFIC_HZ,
        labels: Callable[[int], Mapping[str, str]] | None = None,
        enrollment: Callable[[str], str] | None = None,
        shared_cache: bool = True,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if not heartbeat_interval_s > 0:
            raise ValueError(f"heartbeat interval must be above 0, got {heartbeat_interval_s}")
        try:
            broker = parse_broker_url(broker_url)
            self._roots = load_trusted_keys([Path(k) for k in root_keys])
        except (ProtocolError, ModelStoreError) as exc:
            raise AgentConfigError(str(exc)) from exc
        raise_file_limit(count)  # AgentConfigError if this process cannot hold them
        self.count = count
        self._root = Path(data_dir)
        self._trust_file = Path(trust_file) if trust_file is not None else None
        self._enrollment = enrollment
        self._heartbeat_s = heartbeat_interval_s
        self._knob = knob_of(latency_ms) if isinstance(latency_ms, Sequence) else latency_ms
        self._traffic_hz = traffic_hz
        self.settings = LightSettings(
            fleet=fleet,
            broker=broker,
            control_plane_url=control_plane_url.rstrip("/"),
            heartbeat_interval_s=heartbeat_interval_s,
        )
        self.network = NetworkLoop(name="light-fleet", workers=workers)
        self.fetcher = BlobFetcher(
            self.settings.control_plane_url,
            deadline_s=DOWNLOAD_DEADLINE_S,
            stall_s=DOWNLOAD_STALL_S,
        )
        self.bundles = LightBundles(self._root, self.fetcher, shared=shared_cache)
        indices = range(first_index, first_index + count)
        self._ids = [f"{id_prefix}-{fleet}-{i:03d}" for i in indices]
        self._first = first_index
        self._labels = {
            device_id: dict(labels(first_index + n)) if labels is not None else {}
            for n, device_id in enumerate(self._ids)
        }
        self.devices: list[LightDevice] = []
        self._rng = random.Random(first_index)
        self._running = False
        self._beating = True

    @property
    def device_ids(self) -> list[str]:
        return list(self._ids)

    def labels_of(self, device_id: str) -> dict[str, str]:
        return dict(self._labels[device_id])

    def versions(self, model: str) -> dict[str, str | None]:
        """Per device, the version of ``model`` it serves now (None: none)."""
        out: dict[str, str | None] = {}
        for device in self.devices:
            active = device.active.get(model)
            out[device.device_id] = active.version if active is not None else None
        return out

    @property
    def connected(self) -> int:
        """How many devices are connected to the broker now."""
        return sum(1 for d in self.devices if d.connected)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.network.start()
        self._running = True
        try:
            pending = [self.network.submit(self._open, n, d) for n, d in enumerate(self._ids)]
            self.devices = [future.result() for future in pending]
            for device in self.devices:
                device.connect()
                phase = self._rng.uniform(0.0, self._heartbeat_s)
                self.network.call_later(phase, self._beat, device)
        except BaseException:
            self.stop()
            raise
        logger.info("light simulated fleet of %d devices started", self.count)

    def _open(self, n: int, device_id: str) -> LightDevice:
        """On a worker: one device's trust, identity (enrolled if need be) and state."""
        index = self._first + n
        data_dir = self._root / device_id
        data_dir.mkdir(parents=True, exist_ok=True)
        trust = TrustStore(
            label=device_id,
            data_dir=data_dir,
            pinned_roots=self._roots,
            initial_file=self._trust_file,
            fetch=self.fetcher.fetch_document,
        )
        trust.load_local()
        device = LightDevice(
            index=index,
            device_id=device_id,
            data_dir=data_dir,
            settings=self.settings,
            host=host_class(index),
            trust=trust,
            bundles=self.bundles,
            network=self.network,
            traffic=SyntheticTraffic(index, self._traffic_hz, self._knob),
        )
        enrolled = (data_dir / "identity" / "device.crt").exists()
        token = None
        if self._enrollment is not None and not enrolled:
            token = self._enrollment(device_id)
        device.identity.open(token)
        return device

    def heartbeats(self, enabled: bool) -> None:
        """Pause (the devices stay connected and keep working) or resume heartbeats."""
        if enabled and not self._beating:
            self._beating = True
            for device in self.devices:
                phase = self._rng.uniform(0.0, self._heartbeat_s)
                self.network.call_later(phase, self._beat, device)
        self._beating = enabled

    def _beat(self, device: LightDevice) -> None:
        if not (self._running and self._beating):
            return
        device.heartbeat()
        self.network.call_later(self._heartbeat_s, self._beat, device)

    def wait_connected(self, timeout: float) -> bool:
        """Whether every device connected within ``timeout`` seconds."""
        return all(d.link is not None and d.link.wait_connected(timeout) for d in self.devices)

    def stop(self) -> None:
        self._running = False
        if self.devices:
            with concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="light-stop") as pool:
                for device, result in zip(
                    self.devices, pool.map(_stop_quietly, self.devices), strict=True
                ):
                    if result is not None:
                        logger.warning("%s: stop failed: %s", device.device_id, result)
        if self.network.running:
            self.network.stop()
        self.fetcher.close()
        logger.info("light simulated fleet stopped")

    def __enter__(self) -> LightFleet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_quietly(device: LightDevice) -> str | None:
    try:
        device.stop()
    except Exception as exc:  # stop the others regardless
        return f"{type(exc).__name__}: {exc}"
    return None
