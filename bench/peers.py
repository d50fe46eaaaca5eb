"""The agent's OIP REST path against peer model servers: Seldon MLServer, KServe.

    python -m bench.peers [--seconds 60] [--min-turns 10] [--quick]

One run, one model (the CNN of ``bench.serving``: one 1x3x224x224 float32 image in,
1000 logits out), served with onnxruntime by

- the agent's local API (``agent.serving.local_api``) in a process of its own
  (``bench.peers_runtimes.AgentProcess``), as a deployed agent runs and as each peer
  runs here: ``agent_binary``, ``agent_json``, and the same process's KServe v2 gRPC
  service (``agent.serving.grpc_server``) called from the bare generated stub with raw
  tensor bytes (``bench.oip_grpc_clients.RawGrpc``): ``agent_grpc``;
- the same local API as a thread of this process, serving the baseline's very session
  beside the floors, which are threads of this process too: ``agent_thread_binary``;
- Seldon MLServer 1.7.1 and KServe's Python model server 0.21.0, each in a process of
  its own, from a virtual environment of its own with a small custom runtime
  (``bench.peers_runtimes``; the environments: ``bench.peers_envs``, under
  ``~/.cache/edgefleet/bench-peers`` or ``$EDGEFLEET_BENCH_PEERS_DIR``).

The same OIP v2 request from the same keep-alive ``http.client`` client
(``bench.rest_paths``), as JSON to every server and with the binary tensor data
extension to each that has it (the agent, KServe), is timed in turns, interleaved in one
run with ``session.run`` (the baseline: the agent runner's own session) and the floors
of this box (``bench.tcp_floor``: raw TCP, and the barest HTTP server). Every path's
output is checked against the baseline's before timing. Figures are p50 added over the
baseline.

The JSON line (last) carries ``binary_added_over_best_peer`` and
``json_added_over_best_peer`` (the agent's added p50 over the best peer's, for that
encoding; goal <= 0.5 each), ``agent_over_http_floor_ms`` (``agent_thread_binary``
minus the HTTP floor, turn by turn: the median over the turns of the difference of the
two blocks' medians, which run next to each other; goal <= 0.1;
``agent_over_http_floor_pooled_ms``: the difference of the pooled p50s, which on a
shared 2-vCPU box moves with the model's run time from one spell to the next: the
floor's pooled p50 read below ``session.run``'s own), ``grpc_added_ms`` and
``grpc_added_over_best_peer_binary`` (the agent's gRPC path against the best peer's
binary REST; the peers' own gRPC services are not measured), ``peers`` (the version of
each) and ``skipped`` (peer: why). A full run installs a missing peer environment first
(minutes, once); ``--quick`` (1 s, 2 turns) never installs: it measures each peer whose
environment is ready and names the others in ``skipped``, so CI stays within seconds. A
peer that fails to start fails a full run (exit 1), and is only skipped in a quick one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from agent.runners import create_runner
from agent.serving import LoadedModel, ServedModels
from agent.serving.local_api import LocalApiServer, build_app
from bench.oip_grpc_clients import RawGrpc
from bench.options import parse_args
from bench.peers_runtimes import PEERS, AgentProcess, PeerServer
from bench.rest_paths import (
    NAME,
    RestClient,
    build_cnn,
    cnn_answer_header,
    paired_difference,
    time_paths,
)
from bench.tcp_floor import HttpFloor, TcpFloor
from model_store import build_bundle, load_metadata

GOAL_RATIO = 0.5
GOAL_FLOOR_MS = 0.1
#: calls in a row of a path that takes tens of milliseconds
SLOW_BLOCK = 2


def _start_peers(
    names: list[str], model: Path, workdir: Path, install: bool
) -> tuple[dict[str, PeerServer], dict[str, str]]:
    """(peers serving, peer: why skipped); all start at once, then each is waited for."""
    skipped: dict[str, str] = {}
    starting: dict[str, PeerServer] = {}
    for name in names:
        env = PEERS[name][0]
        if not env.ready():
            if not install:
                skipped[name] = f"no environment at {env.path} (a full run installs it)"
                continue
            try:
                env.install()
            except (RuntimeError, OSError) as exc:
                skipped[name] = f"install failed: {exc}"
                continue
        starting[name] = PeerServer(name, model, workdir / name)
    serving: dict[str, PeerServer] = {}
    for name, peer in starting.items():
        try:
            peer.wait_ready()
            serving[name] = peer
        except RuntimeError as exc:
            skipped[name] = f"did not start: {exc}"
            peer.close()
    return serving, skipped


def run(
    workdir: Path, seconds: float, min_turns: int, *, install: bool, names: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(figures per path, peer: why skipped)."""
    model_path = build_cnn(workdir / "src" / "model.onnx")
    bundle = workdir / "bundle"
    build_bundle(model_path, bundle, name=NAME, version="1.0.0")
    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    runner = create_runner("onnxruntime")
    runner.load(bundle, load_metadata(bundle))
    session: ort.InferenceSession = runner._session  # type: ignore[attr-defined]
    served = ServedModels()
    served.activate(LoadedModel(NAME, "1.0.0", "0" * 64, bundle, runner))

    def run_session(x: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"image": x})[0]

    agent_process = AgentProcess(bundle)
    peers, skipped = _start_peers(names, model_path, workdir / "peers", install)
    servers: dict[str, AgentProcess | PeerServer] = {"agent": agent_process, **peers}
    server = LocalApiServer(build_app(served, server_version="bench"), "127.0.0.1", 0)
    http_floor = HttpFloor(run_session, image, answer_header=cnn_answer_header())
    tcp_floor = TcpFloor(run_session, image, 1000 * 4)
    clients = [RestClient(server.start(), image)]
    floor = RestClient(f"http://{http_floor.address[0]}:{http_floor.address[1]}", image)
    grpc = RawGrpc(agent_process.grpc_address, NAME)
    try:
        paths: dict[str, Callable[[], np.ndarray]] = {
            "ort_session_run": lambda: run_session(image),
            "tcp_floor": lambda: tcp_floor.call(image).reshape(1, 1000),
            # next to each other in every turn (but the one that starts with the floor):
            # their difference is taken turn by turn (``paired_difference``)
            "agent_thread_binary": clients[0].binary,
            "http_floor": floor.binary,
        }
        own_session = set(paths)  # these run the very session of the baseline
        paths["agent_grpc"] = lambda: grpc.infer({"image": image})["logits"]
        for name, peer in servers.items():
            client = RestClient(peer.url, image)
            clients.append(client)
            for encoding in peer.encodings:
                paths[f"{name}_{encoding}"] = getattr(client, encoding)
        expected = run_session(image)
        for name, fn in paths.items():
            if name in own_session:
                np.testing.assert_array_equal(fn(), expected, err_msg=name)
            else:  # a server process with a session of its own: the same values
                np.testing.assert_allclose(fn(), expected, rtol=1e-5, atol=1e-5, err_msg=name)
        blocks = {n: SLOW_BLOCK for n in paths if n.endswith("_json") or n.startswith("kserve")}
        results = time_paths(paths, seconds, blocks, min_turns)
    finally:
        for client in [*clients, floor]:
            client.close()
        grpc.close()
        tcp_floor.close()
        http_floor.close()
        server.stop()
        served.clear()
        for peer in servers.values():
            peer.close()
    base = results["ort_session_run"]["p50_ms"]
    for figures in results.values():
        figures["p50_added_ms"] = figures["p50_ms"] - base
    return results, skipped


def _ratio(paths: dict[str, Any], encoding: str) -> tuple[float | None, str | None]:
    """(agent's added p50 over the best peer's for ``encoding``, that peer)."""
    best = _best_peer(paths, encoding)
    if best is None:
        return None, None
    return _over_best_peer(paths, f"agent_{encoding}", encoding), best.rsplit("_", 1)[0]


def _over_best_peer(paths: dict[str, Any], path: str, encoding: str) -> float | None:
    """``path``'s added p50 over the best peer's for ``encoding`` (None: no peer)."""
    best = _best_peer(paths, encoding)
    if best is None:
        return None
    return float(paths[path]["p50_added_ms"] / paths[best]["p50_added_ms"])


def _best_peer(paths: dict[str, Any], encoding: str) -> str | None:
    """The peer path with the lowest added p50 for ``encoding`` (None: no peer)."""
    peers = {
        name: f["p50_added_ms"]
        for name, f in paths.items()
        if name.endswith(f"_{encoding}") and not name.startswith("agent")
    }
    return min(peers, key=lambda n: peers[n]) if peers else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds in all")
    parser.add_argument("--min-turns", type=int, default=10, help="timed turns at least")
    parser.add_argument(
        "--peers", nargs="*", default=list(PEERS), choices=list(PEERS), help="peers to run"
    )
    args = parse_args(parser, argv, seconds=1.0, min_turns=2)
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as tmp:
        paths, skipped = run(
            Path(tmp), args.seconds, args.min_turns, install=not args.quick, names=args.peers
        )
    print(f"{'path':<20} {'p50 ms':>9} {'p99 ms':>9} {'p50 added ms':>13} {'runs':>7}")
    for name, f in paths.items():
        print(
            f"{name:<20} {f['p50_ms']:>9.3f} {f['p99_ms']:>9.3f} "
            f"{f['p50_added_ms']:>13.3f} {f['runs']:>7}"
        )
    binary_ratio, binary_peer = _ratio(paths, "binary")
    json_ratio, json_peer = _ratio(paths, "json")
    agent, http_floor = paths["agent_thread_binary"], paths["http_floor"]
    over_floor = paired_difference(agent["turns_ms"], http_floor["turns_ms"])
    pooled_over_floor = agent["p50_ms"] - http_floor["p50_ms"]
    for figures in paths.values():
        del figures["turns_ms"]  # used above; not for the JSON line
    grpc_ratio = _over_best_peer(paths, "agent_grpc", "binary")
    for label, ratio, peer in (
        ("binary", binary_ratio, binary_peer),
        ("JSON", json_ratio, json_peer),
    ):
        if ratio is None:
            print(f"{label}: no peer measured")
        else:
            met = "met" if ratio <= GOAL_RATIO else "NOT met"
            print(
                f"{label}: the agent adds {ratio:.2f}x what {peer} adds "
                f"(goal <= {GOAL_RATIO}: {met})"
            )
    if grpc_ratio is not None:
        print(f"gRPC: the agent adds {grpc_ratio:.2f}x what {binary_peer} adds with binary REST")
    met = "met" if over_floor <= GOAL_FLOOR_MS else "NOT met"
    print(
        f"the agent's binary path adds {over_floor:.3f} ms over the HTTP floor, turn by turn "
        f"(goal <= {GOAL_FLOOR_MS}: {met}; {pooled_over_floor:.3f} between the pooled p50s)"
    )
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    report = {
        "onnxruntime": ort.__version__,
        "input": "float32 [1, 3, 224, 224]",
        "binary_added_over_best_peer": binary_ratio,
        "json_added_over_best_peer": json_ratio,
        "best_peer": {"binary": binary_peer, "json": json_peer},
        "agent_over_http_floor_ms": over_floor,
        "agent_over_http_floor_pooled_ms": pooled_over_floor,
        "grpc_added_ms": paths["agent_grpc"]["p50_added_ms"],
        "grpc_added_over_best_peer_binary": grpc_ratio,
        "goals": {
            "binary_added_over_best_peer": GOAL_RATIO,
            "json_added_over_best_peer": GOAL_RATIO,
            "agent_over_http_floor_ms": GOAL_FLOOR_MS,
        },
        "peers": {name: PEERS[name][0].requirements[0] for name in args.peers},
        "skipped": skipped,
        "paths": paths,
        "quick": args.quick,
    }
    print(json.dumps(report, sort_keys=True))
    failed = [n for n, why in skipped.items() if not why.startswith("no environment")]
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    raise SystemExit(main())
