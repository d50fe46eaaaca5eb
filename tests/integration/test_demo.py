"""``edgectl demo``: the same happy path over the embedded (amqtt) broker, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end_on_the_embedded_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MQTT_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "edgectl.cli", "demo", "--workdir", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted((tmp_path / "demo" / "logs").glob("*.log"))
    )
    assert result.returncode == 0, result.stdout + result.stderr + logs
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    # pushed without a gate (a demo fleet has no traffic to judge one), so both complete
    assert any(line.startswith("rollouts ") and line.endswith(" completed") for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("DEVICE"))
    rows = [line.split() for line in lines[header + 1 : header + 7]]
    assert len(rows) == 6  # 3 devices, each serving both models
    assert sorted((row[1], row[2]) for row in rows) == sorted(
        [("demo-classifier", "1.0.0")] * 3 + [("demo-scorer", "2.0.0")] * 3
    )
    for row in rows:
        # the backend each device measured fastest (a candidate key)
        # (a plain-default variant adds "+<variant>": onnxruntime:...:f32+t1)
        runtime, precision = row[3].split(":")[0], row[3].split(":")[-1].split("+")[0]
        assert row[4] == "active"
        assert runtime in ("onnxruntime", "openvino") and precision in ("f32", "bf16", "f16")
        assert row[-1] == "yes"
    # SQLite file under the data directory, content-addressed blobs on disk.
    assert (tmp_path / "demo" / "controlplane" / "edgefleet.db").is_file()
    assert any((tmp_path / "demo" / "controlplane" / "blobs").rglob("*"))
