"""``GET /metrics``: a metrics registry and the host figures in Prometheus text format 0.0.4.

https://prometheus.io/docs/instrumenting/exposition_formats/: each family is a
``# HELP`` line (backslash and newline escaped), a ``# TYPE`` line and its samples
``name{label="value",...} number``; label values escape backslash, double quote and
newline; numbers are Go-style (``+Inf``, ``-Inf``, ``NaN``).

``render_prometheus(metrics, data_dir)`` writes the per-model families of a
``MetricsRegistry`` and the psutil gauges of ``agent.telemetry.host.HostFigures``.
Prometheus gets the 1 / 2.5 / 5 per decade subset of the histogram bounds (cumulative
counts at a subset of the bounds are exact).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.telemetry.host import HOST_ERRORS, CpuMeter, HostFigures, host_figures
from agent.telemetry.stats import BOUNDS, ErrorKind, MetricsRegistry, StatsSnapshot

logger = logging.getLogger(__name__)

#: Content-Type of ``render_prometheus``'s output.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Bounds exposed to Prometheus: 1, 2.5 and 5 per decade (a subset of ``BOUNDS``).
PROMETHEUS_BOUNDS: tuple[float, ...] = (
    *(float(f"{m}e{e}") for e in range(-6, 2) for m in ("1", "2.5", "5")),
    100.0,
)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value or ``le`` bound as Prometheus writes it."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Lines of one exposition; write each family once, then ``render``."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines += [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
        series = f"{name}{{{text}}}" if text else name
        self._lines.append(f"{series} {number(value)}")

    def render(self) -> bytes:
        return ("\n".join(self._lines) + "\n").encode("utf-8")


def host_families(out: Exposition, host: HostFigures) -> None:
    """Gauges: CPU, memory, agent RSS, load, the data_dir filesystem, temperatures."""
    gauges: list[tuple[str, str, float]] = [
        ("host_cpu_percent", "Host CPU busy percent since the previous scrape.", host.cpu_percent),
        ("host_memory_total_bytes", "Host physical memory.", host.mem_total_bytes),
        ("host_memory_available_bytes", "Host memory available.", host.mem_available_bytes),
        ("agent_resident_memory_bytes", "Resident memory of the agent.", host.rss_bytes),
    ]
    if (disk := host.disk) is not None:
        gauges += [
            ("host_disk_total_bytes", "Size of the filesystem of data_dir.", disk.total_bytes),
            ("host_disk_used_bytes", "Used bytes of the filesystem of data_dir.", disk.used_bytes),
            ("host_disk_free_bytes", "Bytes free to the agent on it.", disk.free_bytes),
        ]
    for short, help_text, value in gauges:
        out.family(f"edgefleet_{short}", "gauge", help_text)
        out.sample(f"edgefleet_{short}", {}, value)
    name = "edgefleet_host_load_average"
    out.family(name, "gauge", "Host load average over 1, 5 and 15 minutes.")
    for period, load in zip(("1m", "5m", "15m"), host.load_avg, strict=True):
        out.sample(name, {"period": period}, load)
    name = "edgefleet_host_temperature_celsius"
    out.family(name, "gauge", "Host temperature sensors (psutil), where the host has any.")
    for t in host.temperatures:
        out.sample(name, {"sensor": t.sensor, "label": t.label}, t.celsius)


def render_prometheus(metrics: MetricsRegistry, data_dir: Path | None) -> bytes:
    """``GET /metrics``: model figures plus host gauges (disk of ``data_dir`` if given)."""
    out = Exposition()
    _model_families(out, metrics.collect())
    try:
        host = host_figures(data_dir, cpu=_SCRAPE_CPU)
    except HOST_ERRORS as exc:
        logger.warning("host figures unavailable: %s", exc)
    else:
        host_families(out, host)
    return out.render()


#: CPU busy % between scrapes, apart from the heartbeat's own meter.
_SCRAPE_CPU = CpuMeter()


def model_text(metrics: MetricsRegistry) -> bytes:
    """The model families of the exposition format alone (no host gauges)."""
    out = Exposition()
    _model_families(out, metrics.collect())
    return out.render()


def _model_families(out: Exposition, snapshots: Iterable[StatsSnapshot]) -> None:
    snaps = list(snapshots)

    def labels(s: StatsSnapshot) -> dict[str, str]:
        return {"model": s.name, "version": s.version, "backend": s.backend}

    name = "edgefleet_inference_requests_total"
    out.family(name, "counter", "Inference requests per model version (successes + errors).")
    for s in snaps:
        out.sample(name, labels(s), s.requests)
    name = "edgefleet_inference_errors_total"
    out.family(name, "counter", "Failed inference requests per model version, by kind.")
    for s in snaps:
        for kind in ErrorKind:
            out.sample(name, labels(s) | {"kind": str(kind)}, s.errors.get(kind, 0))
    name = "edgefleet_inference_latency_seconds"
    out.family(name, "histogram", "Backend latency of successful inference requests.")
    for s in snaps:
        cumulative, i = 0, 0
        for bound in PROMETHEUS_BOUNDS:
            while i < len(BOUNDS) and BOUNDS[i] <= bound:
                cumulative += s.counts[i]
                i += 1
            out.sample(f"{name}_bucket", labels(s) | {"le": number(bound)}, cumulative)
        out.sample(f"{name}_bucket", labels(s) | {"le": "+Inf"}, s.successes)
        out.sample(f"{name}_sum", labels(s), s.sum_s)
        out.sample(f"{name}_count", labels(s), s.successes)
