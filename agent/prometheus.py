"""A writer for the Prometheus text exposition format 0.0.4, and the host gauges.

https://prometheus.io/docs/instrumenting/exposition_formats/: each family is a
``# HELP`` line (backslash and newline escaped), a ``# TYPE`` line and its samples
``name{label="value",...} number``; label values escape backslash, double quote and
newline; numbers are Go-style (``+Inf``, ``-Inf``, ``NaN``). ``agent.metrics`` writes the
per-model families with it; ``host_families`` writes the psutil figures of
``agent.telemetry.HostFigures``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.telemetry import HostFigures


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
