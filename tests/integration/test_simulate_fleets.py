"""``edge-agent simulate`` at size: a mixed fleet (light devices plus full agents in a second
process) is one command and takes a rollout like any fleet; ``--private-downloads`` makes
every light device install its own copy; and a full agent holds no more descriptors than
``agent.simulator.capacity`` assumes when it refuses a ``--count``.

One stack (Mosquitto, control plane, one in-process light device) serves the module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.simulator import SimulatedFleet
from agent.simulator.capacity import FULL_AGENT_FDS
from agent.simulator.enroll import api_enrollment
from agent.simulator.light.bundles import SHARED_DIR
from agent.simulator.light.device import LIGHT_AGENT_VERSION
from tests.support.fleet import FleetStack, open_fleet

pytestmark = pytest.mark.integration

LIGHT, FULL = 12, 1
NO_GATE = {"gate": {"enabled": False}}


@pytest.fixture(scope="module")
def stack() -> Iterator[FleetStack]:
    workdir = Path(tempfile.mkdtemp(prefix="ef-simulate-"))
    try:
        with open_fleet(workdir, count=1, light=True) as fleet:
            yield fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(predicate: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def test_a_mixed_fleet_is_one_command(stack: FleetStack) -> None:
    data = stack.workdir / "cli"
    argv = [
        sys.executable, "-m", "agent.cli", "simulate",
        "--light", "--count", str(LIGHT), "--full", str(FULL), "--private-downloads",
        "--fleet", stack.fleet_name, "--id-prefix", "cli",
        "--broker", stack.broker.url, "--control-plane", stack.cp.url,
        "--data-dir", str(data), "--root-key", str(stack.kit.root_pub),
        "--trust", str(stack.kit.trust_file), "--heartbeat-interval", "1",
        "--traffic-hz", "10",
    ]  # fmt: skip
    env = {**os.environ, "EDGEFLEET_API_TOKEN": stack.cp.token}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    ids = [f"cli-{stack.fleet_name}-{i:03d}" for i in range(FULL + LIGHT)]
    try:

        def reported() -> bool:  # registered, and its first state report says its agent
            devices = stack.devices()
            return all(devices.get(i, {}).get("agent_version") for i in ids)

        _wait(reported, "every simulated device registered and reporting", 120)
        children = psutil.Process(proc.pid).children()
        assert len(children) == 1  # the full agents' process
        devices = stack.devices()
        assert devices[ids[0]]["agent_version"] != LIGHT_AGENT_VERSION  # index 0: full agent
        assert {devices[i]["agent_version"] for i in ids[FULL:]} == {LIGHT_AGENT_VERSION}

        stack.push("1.0.0", scale=1.0)
        created = stack.create_rollout("1.0.0", {"gate": {"min_requests": 10}})
        rollout = stack.wait_state(created["id"], "completed", timeout=180)
        assert rollout["counts"]["activated"] == FULL + LIGHT + 1, json.dumps(rollout)
        version = stack.http.get(f"/api/v1/models/{stack.model}/versions/1.0.0").json()
        # --private-downloads: each light device installed its own copy; none is shared
        for device_id in ids[FULL:]:
            models = data / device_id / "models"
            assert [p.name for p in models.iterdir()] == [version["bundle_digest"]], device_id
        assert not (data / SHARED_DIR).exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_full_agent_holds_no_more_descriptors_than_the_capacity_check_assumes(
    stack: FleetStack, tmp_path: Path
) -> None:
    count, fleet = 3, "fd-lab"
    before = _open_fds()
    sim = SimulatedFleet(
        count=count,
        fleet=fleet,
        broker_url=stack.broker.url,
        control_plane_url=stack.cp.url,
        data_dir=tmp_path / "full",
        root_keys=[stack.kit.root_pub],
        trust_file=stack.kit.trust_file,
        agent_config={"selection_budget_s": 1.0},
        enrollment=api_enrollment(stack.cp.url, stack.cp.token, fleet),
    )
    with sim:
        assert sim.wait_connected(30)
        stack.push("2.0.0", scale=2.0)
        body = {"model": stack.model, "version": "2.0.0", "fleet": fleet, "strategy": NO_GATE}
        response = stack.http.post("/api/v1/rollouts", json=body)
        assert response.status_code == 201, response.text
        stack.wait_state(response.json()["id"], "completed", timeout=120)
        serving = _open_fds()  # connected, enrolled, a model selected and loaded
    per_agent = (serving - before) / count
    assert per_agent <= FULL_AGENT_FDS, f"{per_agent:.1f} descriptors per full agent"
