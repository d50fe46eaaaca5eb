"""A lightweight agent: an ``edge-agent run`` process holds no runtime while idle, and
after a measured selection (every candidate loaded, in a child process) only the runtime
of the backend it serves (its memory map, ``hw_profiles.runtimes.mapped_runtimes``), and
never onnx (the ONNX Runtime runner reads external data locations without it), grpcio
(the gRPC local API is off by default) nor cryptography (its keeper child process does
every public-key operation, ``agent.keeper``, and goes away when idle). Idle (no model),
it does not hold numpy nor the local API's JSON tensor codecs (simdjson, orjson) either:
they load with the first model or inference request."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from agent.keeper.child import IDLE_S
from hw_profiles.runtimes import mapped_runtimes
from protocol import EventKind
from tests.support.agent_process import AgentProcess
from tests.support.deploy import Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration

ORT = "onnxruntime:CPUExecutionProvider:f32"
OV = "openvino:CPU:f32"
#: native extensions of packages an agent should not hold (onnx ~14 MB, grpcio ~20 MB,
#: cryptography ~11 MB)
NEVER_MAPPED = ("onnx_cpp2py_export", "cygrpc", "cryptography/hazmat/bindings")
#: and while idle: numpy (~20 MB), simdjson and orjson (~4 MB)
IDLE_NEVER_MAPPED = (*NEVER_MAPPED, "_multiarray_umath", "csimdjson", "orjson.cpython")


def _mapped(pid: int, names: tuple[str, ...] = NEVER_MAPPED) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    return [name for name in names if name in maps]


def test_the_agent_process_holds_only_the_runtime_it_serves(setup: Setup) -> None:
    data_dir = setup.tmp / "footprint"
    # a budget that leaves both candidates time to be loaded and timed on a loaded box
    config = setup.process_config(data_dir, selection_budget_s=8.0)
    agent = AgentProcess(config, setup.tmp / "footprint.log").start()
    try:
        assert agent.process is not None
        pid = agent.process.pid
        wait_until(lambda: setup.watcher.last_state() is not None, 60, "the first state report")
        idle = setup.watcher.last_state()
        assert idle is not None and idle.local_api is not None
        # what an idle agent's local API answers loads no codec: a probe, an unknown model
        assert httpx.get(f"{idle.local_api}/v2/health/live").status_code == 200
        assert httpx.get(f"{idle.local_api}/v2/models/det").status_code == 404
        assert mapped_runtimes(pid) == (), agent.log_tail()  # idle: no runtime at all
        assert _mapped(pid, IDLE_NEVER_MAPPED) == []

        setup.watcher.desire(1, setup.assignment(setup.bundle("det", "1.0.0")))
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 90, "v1")
        wait_until(
            lambda: bool((s := setup.watcher.last_state()) and s.active), 30, "an active model"
        )
        state = setup.watcher.last_state()
        assert state is not None
        (model,) = state.active
        assert model.selection is not None and not model.selection.cached
        measured = {c.key for c in model.selection.candidates if c.p50_ms is not None}
        assert {ORT, OV} <= measured, model.selection  # both were loaded and timed...
        served = model.backend.split(":", 1)[0]
        assert mapped_runtimes(pid) == (served,), agent.log_tail()  # ...only one stays
        assert _mapped(pid) == []
        assert "_multiarray_umath" in _mapped(pid, IDLE_NEVER_MAPPED)  # a model loads numpy
        assert "measured in a child process" in agent.log_tail(200)
        # the keeper verified the command, the signature and the bundle, then went away
        process = psutil.Process(pid)
        wait_until(lambda: not process.children(), IDLE_S + 20, "the keeper to close")
        assert _mapped(pid) == []
    finally:
        agent.stop()
