"""Simulated fleets: N real agents in one process (Python API and ``edge-agent simulate``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent import SimulatedFleet
from model_store import build_bundle, load_private_key, sign_bundle
from protocol import DeviceStatus
from tests.support.deploy import Setup, open_setup
from tests.support.mosquitto import Broker
from tests.support.onnx_models import affine_model
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, mosquitto: Broker) -> Iterator[Setup]:
    with open_setup(tmp_path, mosquitto) as setup:
        yield setup


def test_simulated_fleet_agents_deploy_independently(env: Setup, tmp_path: Path) -> None:
    src = affine_model(tmp_path / "affine-src" / "model.onnx")
    out = tmp_path / "bundles" / "affine"
    build_bundle(src, out, name="affine", version="1.0")
    sign_bundle(out, load_private_key(env.key_path))
    a = env.assignment(out)
    fleet = SimulatedFleet(
        count=3,
        fleet="lab",
        broker_url=env.broker.url,
        control_plane_url=env.blobs.url,
        data_dir=tmp_path / "sim",
        root_keys=[env.kit.root_pub],
        trust_file=env.kit.trust_file,
    )
    assert fleet.device_ids == ["sim-lab-000", "sim-lab-001", "sim-lab-002"]
    with fleet:
        assert fleet.wait_connected(10)
        for device in fleet.device_ids:
            env.watcher.desire(1, a, device=device)
        wait_until(
            lambda: all(ag.status == DeviceStatus.ACTIVE for ag in fleet.agents), 30, "all active"
        )
        x = np.ones((2, 4), dtype=np.float32)
        for ag in fleet.agents:
            np.testing.assert_array_equal(ag.infer("affine", {"x": x})["y"], x * 2 + 1)
        assert len({ag.local_api_url for ag in fleet.agents}) == 3
        archs = {ag.hardware["arch"] for ag in fleet.agents}
        assert archs == {"x86_64", "aarch64"} and all(
            ag.hardware["simulated"] for ag in fleet.agents
        )


def test_edge_agent_simulate_cli_runs_until_sigterm(env: Setup, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "simulate",
            "--count",
            "2",
            "--fleet",
            "cli",
            "--broker",
            env.broker.url,
            "--control-plane",
            env.blobs.url,
            "--data-dir",
            str(tmp_path / "sim"),
            "--root-key",
            str(env.kit.root_pub),
            "--trust",
            str(env.kit.trust_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: (
                {s.device_id for s in list(env.watcher.states)} >= {"sim-cli-000", "sim-cli-001"}
            ),
            60,
            "both simulated agents report",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    wait_until(lambda: env.watcher.availability[-2:] == [False, False], 10, "both offline")


def _affine_bundle(env: Setup, name: str, scale: float, serving: dict[str, int] | None) -> Path:
    src = affine_model(env.tmp / f"{name}-src" / "model.onnx", scale=scale)
    out = env.tmp / "bundles" / name
    build_bundle(src, out, name=name, version="1.0", serving=serving)
    sign_bundle(out, load_private_key(env.key_path))
    return out


def test_a_model_too_large_for_some_simulated_devices_is_refused_there_only(
    env: Setup, tmp_path: Path
) -> None:
    """Each simulated device's budget is three quarters of its simulated RAM: a model that
    declares 8 GiB fits the x86 (16 GiB) and Xeon (256 GiB) boxes, not the rpi5 (8 GiB),
    where the two models already serving go on answering."""
    pin = {"backend": "onnxruntime:CPUExecutionProvider:f32"}
    det, cls, big = (
        env.assignment(_affine_bundle(env, name, scale, serving), i).model_copy(update=pin)
        for i, (name, scale, serving) in enumerate(
            [("det", 2.0, None), ("cls", 3.0, None), ("big", 4.0, {"memory_bytes": 8 << 30})],
            start=1,
        )
    )
    fleet = SimulatedFleet(
        count=3,
        fleet="lab",
        broker_url=env.broker.url,
        control_plane_url=env.blobs.url,
        data_dir=tmp_path / "sim",
        root_keys=[env.kit.root_pub],
        trust_file=env.kit.trust_file,
        agent_config={"selection_budget_s": 1.0},
    )
    x = np.ones((2, 4), dtype=np.float32)
    with fleet:
        assert fleet.wait_connected(10)
        for device in fleet.device_ids:
            env.watcher.desire(1, det, cls, device=device)
        wait_until(
            lambda: all(len(ag.active) == 2 for ag in fleet.agents), 60, "det and cls active"
        )
        for device in fleet.device_ids:
            env.watcher.desire(2, det, cls, big, device=device)
        wait_until(lambda: all(ag.generation == 2 for ag in fleet.agents), 60, "generation 2")

        served = {ag.device_id: sorted(m.name for m in ag.active) for ag in fleet.agents}
        assert served == {
            "sim-lab-000": ["big", "cls", "det"],
            "sim-lab-001": ["big", "cls", "det"],
            "sim-lab-002": ["cls", "det"],
        }
        rpi = fleet.agents[2]
        assert rpi.last_error is not None
        assert rpi.last_error.startswith(
            "big 1.0: does not fit in memory: big 1.0 declares 8.0 GiB"
        )
        assert rpi.last_error.endswith("over the device's 6.0 GiB budget (memory_budget_mb)")
        assert rpi.state_report().memory_budget_bytes == 6 << 30
        for ag in fleet.agents:
            np.testing.assert_array_equal(ag.infer("det", {"x": x})["y"], x * 2 + 1)
            np.testing.assert_array_equal(ag.infer("cls", {"x": x})["y"], x * 3 + 1)
