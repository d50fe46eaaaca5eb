"""What ``edge-agent run`` must not import: a process cannot unload a module, so each one
loaded at start stays resident for the agent's life (issue 18, the agent's own share)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: modules a running agent does not need, each with why it must stay out
STAY_OUT = [
    # the simulator and what only it uses: `run` serves one agent, and edge-agent's
    # parser needs only the `simulate` options (agent.simulator.options)
    "agent.simulator.command",
    "agent.simulator.latency",
    "agent.simulator.fleet",
    "agent.simulator.traffic",
    "agent.simulator.capacity",
    "agent.simulator.enroll",
    "agent.simulator.light",
    # grpcio (~20 MB) is imported when the gRPC server starts (`local_grpc`, off here)
    "agent.serving.grpc_server",
    "grpc",
    # the agent's few control-plane requests go through http.client (agent.http_client);
    # httpx and its dependencies cost ~7.8 MB
    "httpx",
    # paho is imported with dnspython hidden (agent.link.paho_import, ~2.4 MB)
    "dns",
    # warm-up and selection inputs are drawn without numpy.random (agent.runners.draws)
    "numpy.random",
    # backend measurement runs in a child process (agent.deployment.selecting)
    "agent.deployment.selection_child",
    # every public-key operation runs in the keeper's child process (agent.keeper):
    # cryptography holds ~11 MB once imported
    "cryptography",
    "agent.keeper.local",
    "agent.trust_store",
    "agent.identity.files",
    "agent.identity.enroll",
    "model_store.trust",
    "model_store.dsse",
    "model_store.keys",
]

CONFIG = """
device_id = "store-eu-001"
fleet = "store-eu"
broker_url = "mqtt://127.0.0.1:1883"
control_plane_url = "http://127.0.0.1:8080/"
data_dir = "data"
root_keys = ["root.pub"]
local_api = "127.0.0.1:0"
"""

#: what `edge-agent run` does before it starts the agent (agent.cli._cmd_run)
RUN = """
import json, sys
from agent.cli import _parser
from agent.config import load_config
args = _parser().parse_args(["run", "--config", sys.argv[1]])
from agent.agent import Agent
Agent(load_config(args.config))
print(json.dumps(sorted(set(sys.modules))))
"""


def test_edge_agent_run_leaves_out_what_a_running_agent_does_not_need(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(config)], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "agent.agent" in loaded and "agent.simulator.options" in loaded  # it ran
    assert sorted(m for m in STAY_OUT if m in loaded) == []
