"""The local API's binary path at another revision against this checkout's, interleaved in
one process (a tool, not a benchmark: ``python -m bench`` does not run it).

    python -m bench.local_api_ab --rev REV [--seconds 20] [--block 10] [--no-pause]

``bench.peers`` gives one version's ``agent_thread_binary`` per run, and on a shared
2-vCPU box its paths' p50s swing by milliseconds between runs, so two runs cannot tell
versions apart by tens of microseconds. Here ``agent/serving`` at ``REV`` (from ``git
show``, loaded as the package ``_ab_old``) and this checkout's serve the same ORT session
(the CNN of ``bench.peers``) as two threads of this process, beside the HTTP floor
(``bench.tcp_floor.HttpFloor``), and the same binary request is timed in blocks, each
path in turn. Per request: the server thread's CPU time (its pthread CPU clock, read by
the client between requests, so waits for a vCPU on a loaded box do not count) minus the
CPU it spent inside the session's run, and the wall time minus the run's. The JSON line
(last) carries each path's medians, the median of the per-block differences new - old,
and the load average. Figures of one process carry a bias of their own (up to tens of
microseconds): compare the medians of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.runners import create_runner
from agent.serving import LoadedModel, ServedModels
from agent.serving.local_api import LocalApiServer, build_app
from bench.rest_paths import NAME, RestClient, build_cnn, cnn_answer_header
from bench.tcp_floor import HttpFloor
from model_store import build_bundle, load_metadata

OLD = "_ab_old"
#: calls of every path before timing
WARMUP = 20


def _load_old(rev: str, into: Path) -> Any:
    """``agent/serving`` at ``rev`` as the package ``OLD`` (imports of it rewritten)."""
    package = into / OLD
    package.mkdir()
    repo = Path(__file__).resolve().parent.parent  # wherever the tool is run from
    listing = ["git", "ls-tree", "--name-only", f"{rev}:agent/serving"]
    names = subprocess.run(listing, capture_output=True, text=True, check=True, cwd=repo)
    for name in names.stdout.split():
        show = ["git", "show", f"{rev}:agent/serving/{name}"]
        source = subprocess.run(show, capture_output=True, text=True, check=True, cwd=repo).stdout
        (package / name).write_text(re.sub(r"\bagent\.serving\b", OLD, source))
    sys.path.insert(0, str(into))
    import importlib

    return importlib.import_module(f"{OLD}.local_api"), importlib.import_module(f"{OLD}.models")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rev", required=True, help="the revision to compare against")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds")
    parser.add_argument("--block", type=int, default=10, help="requests of a path in a row")
    parser.add_argument(
        "--no-pause", action="store_true", help="no yield between requests (as bench.peers)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgefleet-ab-") as tmp:
        old_api, old_models = _load_old(args.rev, Path(tmp))
        model_path = build_cnn(Path(tmp) / "src" / "model.onnx")
        bundle = Path(tmp) / "bundle"
        build_bundle(model_path, bundle, name=NAME, version="1.0.0")
        runner = create_runner("onnxruntime")
        runner.load(bundle, load_metadata(bundle))
        figures = _compare(runner, bundle, old_api, old_models, args)
    print(json.dumps(figures, sort_keys=True))
    return 0


def _compare(
    runner: Any, bundle: Path, old_api: Any, old_models: Any, args: argparse.Namespace
) -> dict[str, Any]:
    session = runner._session
    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    inside = [0, 0]  # wall and thread CPU ns of the last run
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    inner = runner._run

    def timed_run(names: Any, feed: Any, options: Any) -> Any:
        wall, used = clock(), cpu()
        out = inner(names, feed, options)
        inside[0] += clock() - wall
        inside[1] += cpu() - used
        return out

    def run_session(x: np.ndarray) -> np.ndarray:
        wall, used = clock(), cpu()
        out: np.ndarray = session.run(["logits"], {"image": x})[0]
        inside[0] += clock() - wall
        inside[1] += cpu() - used
        return out

    runner._run = timed_run
    new_served, old_served = ServedModels(), old_models.ServedModels()
    new_served.activate(LoadedModel(NAME, "1.0.0", "0" * 64, bundle, runner))
    old_served.activate(old_models.LoadedModel(NAME, "1.0.0", "0" * 64, bundle, runner))
    new = LocalApiServer(build_app(new_served, server_version="ab"), "127.0.0.1", 0)
    old = old_api.LocalApiServer(old_api.build_app(old_served, server_version="ab"), "127.0.0.1", 0)
    floor = HttpFloor(run_session, image, answer_header=cnn_answer_header())
    clients = {
        "old": RestClient(old.start(), image),
        "new": RestClient(new.start(), image),
        "floor": RestClient(f"http://{floor.address[0]}:{floor.address[1]}", image),
    }
    paths: dict[str, Callable[[], np.ndarray]] = {
        "old": clients["old"].binary,
        "new": clients["new"].binary,
        "floor": clients["floor"].binary,
    }
    try:
        expected = run_session(image)
        for name, call in paths.items():
            np.testing.assert_array_equal(call(), expected, err_msg=name)
        served = {
            n: list(api._http._slots.snapshot().values()) for n, api in [("old", old), ("new", new)]
        }
        # each client keeps one keep-alive connection: its thread is the one timed
        if any(len(t) != 1 for t in served.values()):
            raise RuntimeError(f"one connection per server expected: {served}")
        threads = {"old": served["old"][0], "new": served["new"][0], "floor": floor._server._thread}
        clocks = {n: time.pthread_getcpuclockid(t.ident or 0) for n, t in threads.items()}
        for call in paths.values():
            for _ in range(WARMUP):
                call()
        server: dict[str, list[float]] = {n: [] for n in paths}
        wall: dict[str, list[float]] = {n: [] for n in paths}
        load = os.getloadavg()[0]
        names, turn = list(paths), 0
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline or turn < 10:
            first = turn % len(names)
            for name in names[first:] + names[:first]:
                call, thread_clock = paths[name], clocks[name]
                call()  # the first of a block follows another path: not timed
                for _ in range(args.block):
                    inside[0] = inside[1] = 0
                    used, start = time.clock_gettime_ns(thread_clock), clock()
                    call()
                    took = clock() - start
                    if not args.no_pause:
                        time.sleep(0)  # the server thread reaches its next read first
                    used = time.clock_gettime_ns(thread_clock) - used
                    server[name].append((used - inside[1]) / 1e3)
                    wall[name].append((took - inside[0]) / 1e3)
            turn += 1
    finally:
        for client in clients.values():
            client.close()
        floor.close()
        new.stop()
        old.stop()
    return _figures(server, wall, args, load, turn)


def _figures(
    server: dict[str, list[float]],
    wall: dict[str, list[float]],
    args: argparse.Namespace,
    load: float,
    turns: int,
) -> dict[str, Any]:
    def paired(samples: dict[str, list[float]]) -> float:
        block = args.block
        blocks = len(samples["new"]) // block
        return float(
            np.median(
                [
                    np.median(samples["new"][i * block : (i + 1) * block])
                    - np.median(samples["old"][i * block : (i + 1) * block])
                    for i in range(blocks)
                ]
            )
        )

    medians = {n: float(np.median(s)) for n, s in server.items()}
    walls = {n: float(np.median(s)) for n, s in wall.items()}
    for name in medians:
        print(
            f"{name:6} server CPU - run {medians[name]:8.1f} us   wall - run {walls[name]:8.1f} us"
        )
    return {
        "rev": args.rev,
        "load": [load, os.getloadavg()[0]],
        "turns": turns,
        "server_cpu_us": medians,
        "wall_minus_run_us": walls,
        "server_cpu_new_minus_old_us": paired(server),
        "wall_new_minus_old_us": paired(wall),
        "over_floor_wall_us": {
            "old": walls["old"] - walls["floor"],
            "new": walls["new"] - walls["floor"],
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
