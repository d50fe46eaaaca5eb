"""A simulated fleet: N real ``Agent`` instances in one process with fake hardware facts.

Each full agent loads real runtimes and runs threads of its own, so one process holds at
most ``agent.simulator.capacity.MAX_FULL_AGENTS`` of them (a larger count is refused);
``agent.simulator.light`` simulates large fleets.

Each simulated device has its own id (``{prefix}-{fleet}-{i:03d}``, ``i`` from
``first_index``), data directory and
local API on a free loopback port; only the host facts are invented (marked
``simulated: true``), cycling through a few plausible edge boxes (index 0, 3, 6...:
x86-avx2 with 16 GiB; 1, 4, 7...: xeon-amx with 256 GiB; 2, 5, 8...: rpi5 with 8 GiB).

Simulation knobs (docs/simulator.md):

- ``latency_ms``: extra inference latency per (device index, model, version), a callable
  or ``agent.simulator.latency.SlowRule`` s; added inside each served inference, so the
  agent's own latency figures (its heartbeat's p95) include it;
- ``traffic_hz``: per device, that many in-process inferences per second on every active
  model (``agent.simulator.traffic.TrafficGenerator``), so heartbeats carry real figures;
- ``labels``: per device index the labels it should carry (``labels_of``); the control
  plane holds labels, so whoever provisions the fleet applies them through its API;
- ``agent_config``: more ``agent.toml`` fields for every device (e.g. ``selection_budget_s``,
  or ``memory_budget_mb``: without it each device's memory budget is three quarters of
  its simulated RAM);
- ``memory_budget_mb``: per device index, its memory budget in MiB (None: the default),
  so one fleet can hold devices a model fits and devices it does not;
- ``enrollment``: device id -> a one-time enrollment token (``agent.simulator.enroll``),
  asked for each device that has no identity in its data directory yet; each agent then
  enrolls at start as a real one does. Without it, devices that are not enrolled yet
  start unenrolled (and a control plane drops their reports).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.agent import Agent
from agent.config import config_from_mapping
from agent.simulator.capacity import check_full_count
from agent.simulator.latency import LatencyKnob, SlowRule, knob_of
from agent.simulator.traffic import TrafficCounts, TrafficGenerator
from hw_profiles import GpuFacts, HostFacts

logger = logging.getLogger(__name__)

#: One box of each of three classes of the hw_profiles catalogue: x86-avx2, xeon-amx, rpi5.
_FAKE_HOSTS: tuple[HostFacts, ...] = (
    HostFacts(
        cpu_model="Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz",
        logical_cores=6,
        physical_cores=6,
        isa_flags=("avx2",),
        ram_bytes=16 * 2**30,
        os="Linux",
        os_release="6.8.0-45-generic",
        arch="x86_64",
        python="3.11.9",
        onnxruntime_version="1.31.1",
        onnxruntime_providers=("CPUExecutionProvider",),
        openvino_version="2026.4.1",
        openvino_devices={
            "CPU": "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz",
            "GPU": "Intel(R) UHD Graphics 630 (iGPU)",
        },
        openvino_capabilities={
            "CPU": ("FP32", "INT8", "BIN", "EXPORT_IMPORT"),
            "GPU": ("FP32", "BIN", "FP16", "INT8", "EXPORT_IMPORT"),
        },
        gpus=(
            GpuFacts(name="Intel GPU 0x3e92 (i915)", vendor="intel", driver="i915", source="drm"),
        ),
    ),
    HostFacts(
        cpu_model="Intel(R) Xeon(R) Gold 6430",
        logical_cores=64,
        physical_cores=32,
        isa_flags=(
            "avx2",
            "avx_vnni",
            "avx512f",
            "avx512_vnni",
            "avx512_bf16",
            "avx512_fp16",
            "amx_tile",
            "amx_bf16",
            "amx_int8",
        ),
        ram_bytes=256 * 2**30,
        os="Linux",
        os_release="6.8.0-45-generic",
        arch="x86_64",
        python="3.11.9",
        onnxruntime_version="1.31.1",
        onnxruntime_providers=("CPUExecutionProvider",),
        openvino_version="2026.4.1",
        openvino_devices={"CPU": "Intel(R) Xeon(R) Gold 6430"},
        openvino_capabilities={
            "CPU": ("BF16", "WINOGRAD", "FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT")
        },
    ),
    HostFacts(
        cpu_model="Raspberry Pi 5 Model B Rev 1.0",
        board_model="Raspberry Pi 5 Model B Rev 1.0",
        logical_cores=4,
        physical_cores=4,
        isa_flags=("neon", "asimd", "asimddp", "asimdhp"),
        ram_bytes=8 * 2**30,
        os="Linux",
        os_release="6.6.51+rpt-rpi-2712",
        arch="aarch64",
        python="3.11.2",
        onnxruntime_version="1.31.1",
        onnxruntime_providers=("CPUExecutionProvider",),
        openvino_version="2026.4.1",
        openvino_devices={"CPU": "ARM CPU"},
        openvino_capabilities={"CPU": ("FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT")},
    ),
)


#: How many simulated boxes there are (device ``i`` is box ``i % FAKE_HOST_KINDS``).
FAKE_HOST_KINDS = len(_FAKE_HOSTS)


def fake_facts(index: int) -> dict[str, Any]:
    """Plausible host facts for simulated device ``index`` (cycles through the catalogue)."""
    return {**_FAKE_HOSTS[index % len(_FAKE_HOSTS)].to_dict(), "simulated": True}


class SimulatedFleet:
    """N agents in this process. ``start()`` / ``stop()``; also a context manager."""

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
        local_api_host: str = "127.0.0.1",
        latency_ms: LatencyKnob | Sequence[SlowRule] | None = None,
        traffic_hz: float | None = None,
        labels: Callable[[int], Mapping[str, str]] | None = None,
        agent_config: Mapping[str, Any] | None = None,
        enrollment: Callable[[str], str] | None = None,
        memory_budget_mb: Callable[[int], int | None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        check_full_count(count)
        if traffic_hz is not None and not traffic_hz > 0:
            raise ValueError(f"traffic_hz must be above 0, got {traffic_hz}")
        knob = knob_of(latency_ms) if isinstance(latency_ms, Sequence) else latency_ms
        self.agents: list[Agent] = []
        self._labels: dict[str, dict[str, str]] = {}
        root = Path(data_dir)
        for i in range(first_index, first_index + count):
            device_id = f"{id_prefix}-{fleet}-{i:03d}"
            enrolled = (root / device_id / "identity" / "device.crt").exists()
            token = enrollment(device_id) if enrollment is not None and not enrolled else None
            budget = memory_budget_mb(i) if memory_budget_mb is not None else None
            config = config_from_mapping(
                {
                    **(agent_config or {}),
                    **({"memory_budget_mb": budget} if budget is not None else {}),
                    "device_id": device_id,
                    "fleet": fleet,
                    "broker_url": broker_url,
                    "control_plane_url": control_plane_url,
                    "data_dir": str(root / device_id),
                    "root_keys": [str(k) for k in root_keys],
                    "trust": str(trust_file) if trust_file is not None else None,
                    "local_api": f"{local_api_host}:0",
                    "heartbeat_interval_s": heartbeat_interval_s,
                    "enrollment_token": token,
                },
                source=f"simulated device {device_id}",
            )
            # measured in this process: the simulated agents share it (and what it loaded)
            agent = Agent(
                config, facts=fake_facts(i), measure_in_child=False, keeper_in_child=False
            )
            if knob is not None:
                agent.models.extra_latency = _seconds(knob, i)
            self.agents.append(agent)
            self._labels[device_id] = dict(labels(i)) if labels is not None else {}
        self.traffic = TrafficGenerator(self.agents, traffic_hz) if traffic_hz else None

    @property
    def device_ids(self) -> list[str]:
        return [a.device_id for a in self.agents]

    def labels_of(self, device_id: str) -> dict[str, str]:
        """The labels ``labels`` gave this device (empty without)."""
        return dict(self._labels[device_id])

    @property
    def traffic_counts(self) -> dict[str, TrafficCounts]:
        """Per device: requests the traffic generator made (empty without traffic)."""
        return self.traffic.counts if self.traffic is not None else {}

    def start(self) -> None:
        started: list[Agent] = []
        try:
            for agent in self.agents:
                agent.start()
                started.append(agent)
        except BaseException:
            for agent in reversed(started):
                agent.stop()
            raise
        if self.traffic is not None:
            self.traffic.start()
        logger.info("simulated fleet of %d agents started", len(self.agents))

    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        for agent in reversed(self.agents):
            try:
                agent.stop()
            except Exception as exc:  # stop the others regardless
                logger.warning("%s: stop failed: %s", agent.device_id, exc)

    def wait_connected(self, timeout: float) -> bool:
        return all(agent.wait_connected(timeout) for agent in self.agents)

    def __enter__(self) -> SimulatedFleet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _seconds(knob: LatencyKnob, index: int) -> Callable[[str, str], float]:
    """``ServedModels.extra_latency`` of device ``index``: the knob's ms in seconds."""

    def extra_s(name: str, version: str) -> float:
        return knob(index, name, version) / 1000.0

    return extra_s
