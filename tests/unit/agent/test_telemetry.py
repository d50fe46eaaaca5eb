"""Heartbeat contents from real psutil: host figures, the data_dir filesystem, guarded
temperatures, the CPU meter, and the drained per-model figures of a registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest

from agent.telemetry import (
    CpuMeter,
    HeartbeatLoop,
    MetricsRegistry,
    build_heartbeat,
    disk_usage,
    temperatures,
)
from protocol import Heartbeat, ModelMetrics, decode, encode


class _Reading(NamedTuple):  # the shape of psutil's shwtemp
    label: str
    current: float
    high: float | None
    critical: float | None


def test_heartbeat_carries_host_and_disk_figures(tmp_path: Path) -> None:
    started = time.monotonic()
    models = [ModelMetrics(name="det", version="1", backend="cpu", requests=0, errors=0)]
    beat = build_heartbeat("dev-1", started, cpu=CpuMeter(), data_dir=tmp_path, models=models)
    assert beat.device_id == "dev-1" and beat.uptime_s >= 0.0
    assert 0.0 <= beat.cpu_percent <= 100.0
    assert beat.mem_total_bytes == psutil.virtual_memory().total
    assert beat.rss_bytes == pytest.approx(psutil.Process().memory_info().rss, rel=0.5)
    assert beat.disk is not None
    usage = psutil.disk_usage(str(tmp_path))
    assert beat.disk.total_bytes == usage.total
    assert beat.disk.used_bytes + beat.disk.free_bytes <= beat.disk.total_bytes
    assert 0.0 <= beat.disk.percent <= 100.0
    assert beat.models == models
    assert isinstance(beat.temperatures, list)  # empty where the host has no sensors
    assert decode(Heartbeat, encode(beat)) == beat


def test_disk_usage_of_nothing_or_a_missing_path(tmp_path: Path) -> None:
    assert disk_usage(None) is None
    assert disk_usage(tmp_path / "does-not-exist") is None
    assert build_heartbeat("dev-1", time.monotonic(), cpu=CpuMeter()).disk is None


def test_cpu_meter_stays_in_range_and_keeps_short_windows() -> None:
    meter = CpuMeter(min_window_s=0.0)
    _ = sum(i * i for i in range(200_000))  # some CPU time in between
    assert 0.0 <= meter.percent() <= 100.0
    slow = CpuMeter(min_window_s=3600.0)
    assert slow.percent() == slow.percent() == 0.0  # nothing measured within the window


def test_temperatures_are_guarded_and_named_uniquely(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("driver went away")

    monkeypatch.setattr(psutil, "sensors_temperatures", broken, raising=False)
    assert temperatures() == []

    def readings() -> dict[str, Any]:
        return {
            "nvme": [_Reading("Composite", 41.0, 80.0, 90.0), _Reading("Composite", 43.0, 1, 2)],
            "coretemp": [_Reading("", 50.0, None, None), _Reading("x", float("nan"), 1, 2)],
        }

    monkeypatch.setattr(psutil, "sensors_temperatures", readings, raising=False)
    got = [(t.sensor, t.label, t.celsius) for t in temperatures()]
    assert got == [
        ("coretemp", "0", 50.0),
        ("nvme", "Composite", 41.0),
        ("nvme", "Composite#2", 43.0),
    ]
    monkeypatch.delattr(psutil, "sensors_temperatures", raising=False)  # e.g. macOS, Windows
    assert temperatures() == []


def test_heartbeats_drain_released_model_figures(tmp_path: Path) -> None:
    registry = MetricsRegistry()
    old = registry.bind("det", "1.0.0", "onnxruntime-cpu")
    old.observe(0.002)
    new = registry.bind("det", "2.0.0", "onnxruntime-cpu")
    registry.release(old)  # swapped out, last request done
    new.observe(0.001)
    loop = HeartbeatLoop("dev-1", 60.0, lambda _: None, data_dir=tmp_path, metrics=registry)
    first = loop.beat()
    assert [(m.version, m.requests) for m in first.models] == [("1.0.0", 1), ("2.0.0", 1)]
    assert first.disk is not None
    second = loop.beat()
    assert [(m.version, m.requests) for m in second.models] == [("2.0.0", 1)]


def test_heartbeat_loop_sends_and_stops(tmp_path: Path) -> None:
    sent: list[Heartbeat] = []
    loop = HeartbeatLoop("dev-1", 0.05, sent.append, data_dir=tmp_path)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        loop.stop()
    assert sent and sent[0].models == [] and sent[0].disk is not None
