"""Telemetry: per-model figures, host figures, heartbeats and the Prometheus exposition.

Modules, leaves first: ``stats`` (counts, errors and a latency histogram per model
version), ``host`` (psutil figures), ``heartbeat`` (the periodic heartbeat) and
``prometheus`` (``GET /metrics`` text from a registry). Nothing here imports serving.
"""

from agent.telemetry.heartbeat import HeartbeatLoop, build_heartbeat, heartbeat_of
from agent.telemetry.host import (
    HOST_ERRORS,
    CpuMeter,
    HostFigures,
    disk_usage,
    host_figures,
    temperatures,
)
from agent.telemetry.prometheus import (
    PROMETHEUS_BOUNDS,
    PROMETHEUS_CONTENT_TYPE,
    model_text,
    render_prometheus,
)
from agent.telemetry.stats import BOUNDS, ErrorKind, MetricsRegistry, ModelStats, StatsSnapshot

__all__ = [
    "BOUNDS",
    "HOST_ERRORS",
    "PROMETHEUS_BOUNDS",
    "PROMETHEUS_CONTENT_TYPE",
    "CpuMeter",
    "ErrorKind",
    "HeartbeatLoop",
    "HostFigures",
    "MetricsRegistry",
    "ModelStats",
    "StatsSnapshot",
    "build_heartbeat",
    "disk_usage",
    "heartbeat_of",
    "host_figures",
    "model_text",
    "render_prometheus",
    "temperatures",
]
