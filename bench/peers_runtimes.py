"""The peer model servers of ``bench.peers``, each serving the ONNX model with onnxruntime
(a helper, not a benchmark).

Each peer gets a small custom runtime, written into a temporary directory by ``start``
and run from the peer's own virtual environment (``bench.peers_envs``):

- ``mlserver``: Seldon MLServer, an ``MLModel`` subclass (``NumpyCodec`` in and out, one
  ``InferenceSession``) with ``model-settings.json`` and a ``settings.json`` that turns
  parallel inference workers off (the faster setting on one box: a request is not
  handed to a worker process) and puts every port on a free one; ``mlserver start DIR``.
  MLServer's REST has no binary tensor data extension: JSON only.
- ``kserve``: KServe's Python model server, a ``kserve.Model`` subclass started with
  ``kserve.ModelServer`` (one worker, no gRPC, no latency logging), answering binary
  outputs when the request asks for them (``InferResponse`` with the request's
  ``request_outputs``).

Sessions are plain ``InferenceSession``s with the CPU provider and onnxruntime's
defaults, as the agent's runner makes them. ``PeerServer`` waits for the model to be
ready (``GET /v2/models/cnn/ready``) and stops the process (and its children) on
``close``; its output goes to a log file whose tail is shown if it fails.

``AgentProcess`` serves the same bundle with the agent's local API in a process of its
own (``multiprocessing``, spawn), as the agent runs and as each peer does here: no
thread of the benchmark's client shares its interpreter. Like the agent at start, it
keeps its request buffers for reuse (``agent.runners.heap.keep_request_buffers``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from agent.runners import create_runner
from agent.runners.heap import keep_request_buffers
from agent.serving import LoadedModel, ServedModels
from agent.serving.grpc_server import GrpcServer, InferenceService
from agent.serving.local_api import LocalApiServer, build_app
from bench.peers_envs import PeerEnv
from bench.rest_paths import NAME
from edgectl.processes import free_port
from model_store import load_metadata

#: seconds a peer may take to start and load the model
START_TIMEOUT_S = 180.0

MLSERVER = PeerEnv("mlserver", "1.7.1")
KSERVE = PeerEnv("kserve", "0.21.0")
#: (env, encodings its REST path supports)
PEERS: dict[str, tuple[PeerEnv, tuple[str, ...]]] = {
    "mlserver": (MLSERVER, ("json",)),
    "kserve": (KSERVE, ("binary", "json")),
}

_MLSERVER_RUNTIME = """
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        self._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        arrays = self._session.run(self._outputs, feeds)
        outputs = [NumpyCodec.encode_output(n, a) for n, a in zip(self._outputs, arrays)]
        return InferenceResponse(model_name=self.name, outputs=outputs)
"""

_KSERVE_RUNTIME = """
import sys
import uuid

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.ready = True

    async def predict(self, payload: InferRequest, headers=None, response_headers=None):
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        arrays = self._session.run(self._outputs, feeds)
        outputs = [
            InferOutput(name=n, shape=list(a.shape), datatype="FP32", data=a)
            for n, a in zip(self._outputs, arrays)
        ]
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


if __name__ == "__main__":
    name, path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ModelServer(
        http_port=port,
        workers=1,
        enable_grpc=False,
        enable_latency_logging=False,
        timeout_keep_alive=600,
    ).start([OnnxModel(name, path)])
"""


class PeerServer:
    """One peer serving ``model`` as ``cnn`` on a free loopback port, until ``close``."""

    def __init__(self, name: str, model: Path, workdir: Path) -> None:
        env, self.encodings = PEERS[name]
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "server.log"
        argv = self._prepare(env, model, workdir)
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                argv,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers are stopped with it
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def _prepare(self, env: PeerEnv, model: Path, workdir: Path) -> list[str]:
        if self.name == "mlserver":
            (workdir / "onnx_runtime.py").write_text(_MLSERVER_RUNTIME)
            settings = {
                "http_port": self.port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "debug": False,
                "host": "127.0.0.1",
            }
            model_settings = {
                "name": NAME,
                "implementation": "onnx_runtime.OnnxModel",
                "parameters": {"uri": str(model)},
            }
            (workdir / "settings.json").write_text(json.dumps(settings))
            (workdir / "model-settings.json").write_text(json.dumps(model_settings))
            return [str(env.bin("mlserver")), "start", str(workdir)]
        (workdir / "kserve_runtime.py").write_text(_KSERVE_RUNTIME)
        script = str(workdir / "kserve_runtime.py")
        return [str(env.bin("python")), script, NAME, str(model), str(self.port)]

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Return once the model answers ready; ``RuntimeError`` (with the log's tail)
        if the process ends or the timeout passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self._process.returncode}): {self.tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", f"/v2/models/{NAME}/ready")
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        return
                finally:
                    conn.close()
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout:g} s: {self.tail()}")

    def tail(self, lines: int = 5) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(5)


def _serve_agent(bundle: str, out: Connection, stop: Event) -> None:
    """Child process: the local API (REST and gRPC) serving ``bundle`` until ``stop``;
    sends its URL and gRPC address."""
    path = Path(bundle)
    keep_request_buffers()  # as the agent does at start (``agent.runners.heap``)
    runner = create_runner("onnxruntime")
    runner.load(path, load_metadata(path))
    served = ServedModels()
    served.activate(LoadedModel(NAME, "1.0.0", "0" * 64, path, runner))
    server = LocalApiServer(build_app(served, server_version="bench"), "127.0.0.1", 0)
    grpc_server = GrpcServer(InferenceService(served, server_version="bench"), "127.0.0.1", 0)
    out.send((server.start(), grpc_server.start()))
    stop.wait()
    grpc_server.stop()
    server.stop()
    served.clear()


class AgentProcess:
    """The agent's local API (REST and gRPC) serving ``bundle`` as ``cnn`` in a process
    of its own."""

    name = "agent"
    encodings = ("binary", "json")

    def __init__(self, bundle: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve_agent, args=(str(bundle), send, self._stop), daemon=True
        )
        self._process.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not receive.poll(0.2):
            if not self._process.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(
                    f"the agent's local API did not start (exit code {self._process.exitcode})"
                )
        #: the local API's URL and its gRPC service's ``host:port``
        self.url, self.grpc_address = receive.recv()

    def close(self) -> None:
        self._stop.set()
        self._process.join(15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
