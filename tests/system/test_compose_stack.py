"""docker/compose.yaml for real (``make compose-test``): the images made by ``make images``,
Mosquitto with the generated TLS + ACL configuration and persistence, PostgreSQL, two
control-plane replicas and three agents. The agents enroll themselves; a model pushed
with the stack's own ``edgectl`` service reaches all three, which serve it (asked inside
each container: the local API is loopback only) with the outputs of a direct ONNX
Runtime run; both replicas applied reports; the broker's retained commands outlive it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from edgectl.demo_model import INPUT_NAME, INPUT_WIDTH, build_demo_model
from tests.support.compose import Stack, compose_stack
from tests.support.docker import docker, require_docker
from tests.support.ports import wait_until
from tests.support.raw_http import oip_body

# minutes, not the suite's 300 s: images, a stack or a booted systemd on a busy 2-core box
pytestmark = [pytest.mark.system, pytest.mark.timeout(1200)]

IMAGES = {
    "controlplane": "/var/lib/edgefleet",
    "agent": "/var/lib/edgefleet-agent",
    "mosquitto": "/var/lib/mosquitto",
    "postgres": "/var/lib/postgresql/data",
}
AGENTS = ("agent-1", "agent-2", "agent-3")
FLEET = "compose"
#: Reads one OIP JSON answer from the agent's loopback API, inside its container.
INFER = """
import json, sys, urllib.request as u
body = sys.stdin.buffer.read()
req = u.Request("http://127.0.0.1:8500/v2/models/det/infer", data=body,
                headers={"content-type": "application/json"})
print(u.urlopen(req, timeout=30).read().decode())
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    require_docker(*(f"edgefleet/{name}:latest" for name in IMAGES))
    with compose_stack() as running:
        yield running


def _token(stack: Stack) -> str:
    return stack.run("exec", "-T", "controlplane-1", "cat", "/cp-keys/admin.token").strip()


def _devices(stack: Stack, token: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(
        f"{stack.url()}/api/v1/devices",
        params={"fleet": FLEET},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    answer.raise_for_status()
    body = answer.json()
    items = body["items"] if isinstance(body, dict) else body
    return {str(d["id"]): d for d in items}


def _serves(device: dict[str, Any], version: str) -> bool:
    return any(
        m.get("name") == "det" and m.get("version") == version and m.get("state") == "active"
        for m in device.get("models") or []
    )


def _applied(stack: Stack, replica: int, token: str) -> float:
    text = httpx.get(
        f"{stack.url(replica)}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=10
    ).text
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^edgefleet_reports_applied_total\{[^}]*\} (\S+)$", text, re.M)
    )


def test_images_are_non_root_with_a_healthcheck_and_their_state_on_a_volume() -> None:
    require_docker(*(f"edgefleet/{name}:latest" for name in IMAGES))
    for name, state in IMAGES.items():
        config = json.loads(docker("image", "inspect", f"edgefleet/{name}:latest"))[0]["Config"]
        assert config["User"] not in ("", "root", "0"), name
        assert config["Healthcheck"]["Test"][0] == "CMD", name
        assert state in (config.get("Volumes") or {}), name


def test_the_agents_enroll_and_serve_a_pushed_model(stack: Stack, tmp_path: Path) -> None:
    token = _token(stack)
    wait_until(
        lambda: (
            all(d.get("online") for d in _devices(stack, token).values())
            and set(_devices(stack, token)) == set(AGENTS)
        ),
        timeout=180,
        what="three enrolled agents online",
        interval=2,
    )
    models = tmp_path / "models"
    models.mkdir(mode=0o755)
    models.chmod(0o755)  # the edgectl container's user reads it through a bind mount
    model = build_demo_model(models / "det.onnx", seed=5)
    model.chmod(0o644)
    pushed = stack.run(
        "run", "--rm", "-v", f"{models}:/work:ro", "edgectl",
        "push", "model", "/work/det.onnx", "--name", "det", "--version", "1.0.0",
        "--fleet", FLEET, "--no-gate", "--timeout", "5m", "--json",
        timeout=420,
    )  # fmt: skip
    rollout = json.loads(pushed[pushed.index("{") :])["rollout"]
    assert rollout["state"] == "completed", rollout
    devices = _devices(stack, token)
    assert all(_serves(devices[a], "1.0.0") for a in AGENTS), devices

    features = np.random.default_rng(1).standard_normal((2, INPUT_WIDTH)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(model)).run(None, {INPUT_NAME: features})
    request = json.dumps(oip_body({INPUT_NAME: features}))
    for agent in AGENTS:
        answer = json.loads(stack.run("exec", "-T", agent, "python3", "-c", INFER, input=request))
        (output,) = answer["outputs"]
        got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        # within the selection's accuracy guard: a device may serve bf16 if it measured fastest
        scale = float(np.max(np.abs(expected))) or 1.0
        assert float(np.max(np.abs(got - expected))) <= 0.01 * scale, agent

    # MQTT 5 shared subscriptions: each replica applied some of the agents' reports
    assert _applied(stack, 1, token) > 0
    assert _applied(stack, 2, token) > 0


def _connections(stack: Stack, client: str) -> int:
    """How many times Mosquitto logged ``client`` connecting (its log: one line each)."""
    return stack.run("logs", "--no-color", "mosquitto", timeout=60).count(f" as {client} ")


def test_the_broker_keeps_retained_commands_across_a_restart(stack: Stack) -> None:
    stack.run("stop", "mosquitto", timeout=120)  # SIGTERM: Mosquitto saves its database
    saved = docker(
        "run", "--rm", "-v", f"{stack.volume('mosquitto')}:/m:ro", "--entrypoint", "sh",
        "edgefleet/mosquitto:latest", "-c",
        "grep -c -a edgefleet/v1/trust /m/mosquitto.db;"
        " grep -c -a edgefleet/v1/devices/agent-1/desired /m/mosquitto.db",
    )  # fmt: skip
    # the retained trust document and agent-1's signed command are in the saved database
    assert [int(n) >= 1 for n in saved.split()] == [True, True], saved
    before = {a: _connections(stack, a) for a in AGENTS}
    stack.run("start", "mosquitto", timeout=120)
    wait_until(
        lambda: all(_connections(stack, a) > before[a] for a in AGENTS),
        timeout=120,
        what="every agent connected to the restarted broker",
        interval=2,
    )
