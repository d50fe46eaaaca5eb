"""The agent's footprint: resident memory and start time, idle and serving on each runtime.

    python -m bench.footprint [--requests 200] [--runs 3] [--runtimes onnxruntime openvino]
                              [--goals-only] [--agent-user NAME] [--as-cached] [--quick]

A real one-device fleet (``bench.fleet``: control plane with its embedded broker, one
``edge-agent run`` process). Each configuration is a fresh agent process, timed from just
before its spawn until it is ready, and measured (RSS, ``psutil``) once ready and at rest:
its keeper (``agent.keeper``: the child process that verifies commands, trust and bundles,
closed ``IDLE_S`` after its last operation) has exited; a child still there after
``AT_REST_S`` is counted in:

- ``idle``: no model; ready when its local API answers ``/v2/health/live``, measured a
  moment later (the default config: no gRPC server); ``idle + gRPC``: the same with
  ``local_grpc`` on (information only: ``idle_grpc_mb``);
- ``serving <runtime>``: the small ``tiny-mlp`` (8 inputs) pinned to that runtime (the
  bundle's signed ``selection.pin``), restored from the cache at start; ready when it
  answers an inference (the median of ``--runs`` starts); measured after ``--requests``
  more;
- ``measured``: a version without a pin, pushed to the idle agent, which measures every
  candidate (in a child process) and serves the winner: measured after ``--requests``
  (the runtimes it holds should be the winner's only).

For each, the runtime libraries mapped in the agent process (``/proc/PID/maps``) say
which runtimes it holds. Baselines in the same run, each a fresh process: bare Python,
``python -c 'import onnxruntime'`` and ``python -c 'import openvino'`` (RSS at the end,
wall time). The agent's own share is its RSS serving on a runtime minus that runtime's
baseline. Goals: own share <= 40 MB (the worst of ``--runtimes``: ``agent_own_mb``), idle
<= 60 MB (``idle_mb``). ``--goals-only`` leaves out what the goals do not need (``idle +
gRPC`` and ``measured``: null in the JSON; the serving baselines: empty). Information, not
a goal: ``baseline_serving_mb``, a bare script that loads the same model on each runtime
and answers ``--requests`` inferences (what the runtime holds when it serves, which the
``import`` baseline does not pay: OpenVINO's CPU plugin loads at the first compile), and
``own_over_serving_baseline_mb``, the agent serving on it minus that; and per runtime
``own_file_mb``, the file-backed part of the own share (``RssFile``: pages of mapped
libraries the agent touched beyond what the import did; the rest is its heap). That part
moves with the page cache's state: the same ``import onnxruntime`` was seen at 64.4 MB
and at 50.9 MB on one box within an hour, the difference all in library pages, so own
shares compare within one run only. So, first, the runtimes' shared objects are put
in the state a device that booted has them (``bench.page_cache.read_from_disk``: written
back and dropped from the page cache, read from disk again by the baselines and the
agent): right after a ``make install`` the same agent read ~20 MB more of OpenVINO's
library pages (large folios of the files just written), an own share of 53 MB against
33 MB. ``--as-cached`` measures the cache as it is (the JSON's ``page_cache``).
``--agent-user NAME`` (as root) runs the agent as that
user, who owns none of its runtime's files, as under the shipped systemd unit
(``DynamicUser``, a root-owned venv; the interpreter must be readable by that user); the
baselines run as the caller. Prints a table,
then one JSON line last.
``--quick``: 20 requests, one run of each baseline and one start of the serving agent,
onnxruntime only, goals only (~half the time of a full run: the control plane's start
is most of what is left).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

from agent.keeper.child import IDLE_S
from bench.fleet import BenchFleet, oip_json_body
from bench.models import catalogue
from bench.options import parse_args
from bench.page_cache import read_from_disk
from hw_profiles.runtimes import mapped_runtimes

GOAL_OWN_MB = 40.0
GOAL_IDLE_MB = 60.0
MODEL = "tiny-mlp"
#: the candidate each runtime is pinned to
PINS = {
    "onnxruntime": "onnxruntime:CPUExecutionProvider:f32",
    "openvino": "openvino:CPU:f32",
}
#: the measured selection's budget in this benchmark (the default is 20 s)
SELECTION_BUDGET_S = 3.0
BASELINES = {
    "python": "pass",
    "onnxruntime": "import onnxruntime",
    "openvino": "import openvino",
}
#: a bare script serving the same model on each runtime (``{model}``, ``{feeds}`` an npz,
#: ``{n}`` requests): what the runtime itself holds when it serves, the agent left out
SERVING_BASELINES = {
    "onnxruntime": (
        "import numpy as np, onnxruntime as ort\n"
        "feeds = dict(np.load({feeds!r}))\n"
        "s = ort.InferenceSession({model!r})\n"
        "for _ in range({n}): s.run(None, feeds)\n"
    ),
    "openvino": (
        "import numpy as np, openvino as ov\n"
        "feeds = dict(np.load({feeds!r}))\n"
        "r = ov.Core().compile_model({model!r}, 'CPU').create_infer_request()\n"
        "for _ in range({n}): r.infer(feeds)\n"
    ),
}
MB = 1024 * 1024
#: how long a figure waits for the agent to be at rest (no keeper, no selection child)
AT_REST_S = IDLE_S + 10.0


@dataclass(frozen=True)
class Figures:
    rss_mb: float
    start_s: float
    runtimes: tuple[str, ...]
    #: the part of ``rss_mb`` that is file-backed (libraries' pages: ``RssFile``)
    file_mb: float = 0.0


def _baseline(code: str) -> tuple[float, float, float]:
    """(RSS MB at the end, wall seconds, file-backed RSS MB) of ``python -c CODE`` in a
    fresh process."""
    script = (
        f"{code}\n"
        "kb = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status')"
        " if l.startswith(('VmRSS:', 'RssFile:'))}\n"
        "print(kb['VmRSS'] * 1024, kb['RssFile'] * 1024)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    rss, file = done.stdout.strip().splitlines()[-1].split()
    return int(rss) / MB, time.monotonic() - start, int(file) / MB


def _file_mb(pid: int) -> float:
    """The file-backed part of ``pid``'s RSS (``RssFile``: mapped libraries' pages), MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("RssFile:"))
    return int(line.split()[1]) * 1024 / MB


def _tree_rss_mb(pid: int) -> float:
    """RSS of the agent and of every child it has now (MB)."""
    agent = psutil.Process(pid)
    total = agent.memory_info().rss
    for child in agent.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return float(total) / MB


def _rss_mb(pid: int) -> float:
    """The agent's RSS at rest: once its keeper (``agent.keeper``, the child process of
    its public-key operations, closed ``IDLE_S`` after the last one) and any other child
    has exited; the agent and its children if one is still there after ``AT_REST_S``."""
    agent = psutil.Process(pid)
    deadline = time.monotonic() + AT_REST_S
    while agent.children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _tree_rss_mb(pid)


def _agent_pid(fleet: BenchFleet) -> int:
    assert fleet.agent is not None
    return int(fleet.agent.process.pid)


def _wait(fleet: BenchFleet, ready: object, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline or fleet.agent is None:
            raise SystemExit(f"the agent was not {what} within {timeout:.0f} s")
        fleet.agent.check_alive()
        time.sleep(0.01)


def _live(fleet: BenchFleet, http: httpx.Client) -> bool:
    try:
        return http.get(f"{fleet.local_api}/v2/health/live").status_code == 200
    except httpx.HTTPError:
        return False


def _serve_requests(fleet: BenchFleet, body: dict[str, object], http: httpx.Client, n: int) -> None:
    for _ in range(n):
        if not fleet.infer_ok("m", body, http):
            raise SystemExit("an inference request failed")


def _idle(fleet: BenchFleet, http: httpx.Client) -> Figures:
    started = fleet.start_agent()
    _wait(fleet, lambda: _live(fleet, http), "live")
    start_s = time.monotonic() - started
    time.sleep(1.0)  # settled: its threads started, its first heartbeat sent
    pid = _agent_pid(fleet)
    return Figures(_rss_mb(pid), start_s, mapped_runtimes(pid))


def _serving(
    fleet: BenchFleet, body: dict[str, object], http: httpx.Client, requests: int, starts: int
) -> Figures:
    """A fresh agent restoring the active model from its cache, ``starts`` times: start
    -> first answer (the median), then ``requests`` more, then its RSS (the last start's)."""
    times: list[float] = []
    for _ in range(starts):
        fleet.stop_agent()
        started = fleet.start_agent()
        _wait(fleet, lambda: fleet.infer_ok("m", body, http), "serving")
        times.append(time.monotonic() - started)
    _serve_requests(fleet, body, http, requests)
    pid = _agent_pid(fleet)
    rss = _rss_mb(pid)
    return Figures(rss, statistics.median(times), mapped_runtimes(pid), _file_mb(pid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each baseline, starts of each serving agent"
    )
    parser.add_argument("--runtimes", nargs="+", choices=list(PINS), default=list(PINS))
    parser.add_argument(
        "--goals-only", action="store_true", help="no idle + gRPC, no measured selection"
    )
    parser.add_argument(
        "--agent-user",
        metavar="NAME",
        help="run the agent as this user (as root): it owns none of its runtime's files",
    )
    parser.add_argument(
        "--as-cached",
        action="store_true",
        help="leave the runtimes' libraries in the page cache as they are (module docstring)",
    )
    args = parse_args(parser, argv, requests=20, runs=1, runtimes=["onnxruntime"], goals_only=True)
    dropped = 0 if args.as_cached else read_from_disk()
    print(
        "page cache: as it is (--as-cached)"
        if args.as_cached
        else f"page cache: the runtimes' libraries ({dropped / 1e6:.0f} MB) read from disk "
        "again, as after a boot (bench.page_cache)"
    )
    spec = next(m for m in catalogue() if m.name == MODEL)
    baselines: dict[str, tuple[float, float]] = {}
    baseline_file_mb: dict[str, float] = {}
    for name, code in BASELINES.items():
        if name != "python" and name not in args.runtimes:
            continue
        runs = [_baseline(code) for _ in range(args.runs)]
        baselines[name] = (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
        )
        baseline_file_mb[name] = statistics.median(r[2] for r in runs)
    serving: dict[str, Figures] = {}
    with (
        tempfile.TemporaryDirectory(prefix="ef-bench-footprint-") as tmp,
        BenchFleet(Path(tmp), agent_user=args.agent_user) as fleet,
        httpx.Client(timeout=10) as http,
    ):
        with fleet.config.open("a") as fh:
            fh.write(f"selection_budget_s = {SELECTION_BUDGET_S}\n")
        model = spec.build(Path(tmp) / "model" / "mlp.onnx")
        feeds = spec.feeds()
        body = oip_json_body(feeds)
        serving_baselines: dict[str, float] = {}
        if not args.goals_only:  # information: the runtime serving the model, no agent
            np.savez(Path(tmp) / "feeds.npz", **feeds)  # type: ignore[arg-type]  # (numpy stubs)
            for runtime in args.runtimes:
                code = SERVING_BASELINES[runtime].format(
                    model=str(model), feeds=str(Path(tmp) / "feeds.npz"), n=args.requests
                )
                serving_baselines[runtime] = statistics.median(
                    _baseline(code)[0] for _ in range(args.runs)
                )
        fleet.start_agent()
        fleet.wait_registered()  # enrolled; the next starts are plain restarts
        fleet.stop_agent()
        idle_grpc: Figures | None = None
        if not args.goals_only:
            plain = fleet.config.read_text()
            fleet.config.write_text(plain + 'local_grpc = "127.0.0.1:0"\n')
            idle_grpc = _idle(fleet, http)
            fleet.stop_agent()
            fleet.config.write_text(plain)
        idle = _idle(fleet, http)
        fleet.wait_registered()
        measured: Figures | None = None
        backend: object = None
        if not args.goals_only:
            # a measured selection in the idle agent: every candidate, in a child process
            fleet.wait_rollout(fleet.push(model, name="m", version="1.0.0"))
            _serve_requests(fleet, body, http, args.requests)
            pid = _agent_pid(fleet)
            measured = Figures(_rss_mb(pid), 0.0, mapped_runtimes(pid))
            backend = http.get(f"{fleet.local_api}/v2/models/m").json().get("platform")
        for version, runtime in enumerate(args.runtimes, start=2):
            pin = PINS[runtime]
            rollout = fleet.push(model, name="m", version=f"{version}.0.0", selection={"pin": pin})
            fleet.wait_rollout(rollout)
            serving[runtime] = _serving(fleet, body, http, args.requests, args.runs)
    own = {rt: f.rss_mb - baselines[rt][0] for rt, f in serving.items()}
    own_file = {rt: f.file_mb - baseline_file_mb[rt] for rt, f in serving.items()}
    over_serving = {rt: serving[rt].rss_mb - mb for rt, mb in serving_baselines.items()}
    agent_own = max(own.values())
    _print_table(baselines, idle, idle_grpc, serving, own, own_file, measured, backend)
    for rt, mb in serving_baselines.items():
        print(
            f"information: a bare script serving {MODEL} on {rt}: {mb:.1f} MB; the agent "
            f"serving it holds {over_serving[rt]:.1f} MB more"
        )
    print(
        json.dumps(
            {
                "agent_own_mb": round(agent_own, 1),
                "idle_mb": round(idle.rss_mb, 1),
                "idle_start_s": round(idle.start_s, 3),
                "idle_grpc_mb": round(idle_grpc.rss_mb, 1) if idle_grpc else None,
                "serving": {
                    rt: {
                        "rss_mb": round(f.rss_mb, 1),
                        "own_mb": round(own[rt], 1),
                        "own_file_mb": round(own_file[rt], 1),
                        "start_s": round(f.start_s, 3),
                        "runtimes_loaded": list(f.runtimes),
                    }
                    for rt, f in serving.items()
                },
                "measured": {
                    "rss_mb": round(measured.rss_mb, 1),
                    "backend": backend,
                    "runtimes_loaded": list(measured.runtimes),
                }
                if measured
                else None,
                "baseline": {
                    name: {
                        "rss_mb": round(rss, 1),
                        "file_mb": round(baseline_file_mb[name], 1),
                        "start_s": round(s, 3),
                    }
                    for name, (rss, s) in baselines.items()
                },
                "baseline_serving_mb": {rt: round(mb, 1) for rt, mb in serving_baselines.items()},
                "own_over_serving_baseline_mb": {
                    rt: round(mb, 1) for rt, mb in over_serving.items()
                },
                "goal_own_mb": GOAL_OWN_MB,
                "goal_idle_mb": GOAL_IDLE_MB,
                "own_ok": agent_own <= GOAL_OWN_MB,
                "idle_ok": idle.rss_mb <= GOAL_IDLE_MB,
                "requests": args.requests,
                "agent_user": args.agent_user,
                "page_cache": "as cached" if args.as_cached else "runtimes read from disk",
                "page_cache_dropped_mb": round(dropped / 1e6, 1),
                "quick": args.quick,
            }
        )
    )
    return 0


def _print_table(
    baselines: dict[str, tuple[float, float]],
    idle: Figures,
    idle_grpc: Figures | None,
    serving: dict[str, Figures],
    own: dict[str, float],
    own_file: dict[str, float],
    measured: Figures | None,
    backend: object,
) -> None:
    print(f"agent footprint ({MODEL}; RSS once ready / after the requests)")
    print(f"{'process':<40} {'RSS MB':>8} {'own MB':>8} {'start s':>8}  runtimes loaded")
    for name, (rss, seconds) in baselines.items():
        label = f"baseline: python -c '{BASELINES[name]}'"
        print(f"{label:<40} {rss:>8.1f} {'':>8} {seconds:>8.3f}")
    print(
        f"{'agent idle':<40} {idle.rss_mb:>8.1f} {'':>8} {idle.start_s:>8.3f}  "
        f"{', '.join(idle.runtimes) or '-'}"
    )
    if idle_grpc is not None:
        label = "agent idle + gRPC (local_grpc on)"
        print(f"{label:<40} {idle_grpc.rss_mb:>8.1f} {'':>8} {idle_grpc.start_s:>8.3f}")
    for rt, f in serving.items():
        print(
            f"{'agent serving on ' + rt:<40} {f.rss_mb:>8.1f} {own[rt]:>8.1f} "
            f"{f.start_s:>8.3f}  {', '.join(f.runtimes) or '-'}"
        )
    if measured is not None:
        print(
            f"{'agent after a measured selection':<40} {measured.rss_mb:>8.1f} {'':>8} {'':>8}  "
            f"{', '.join(measured.runtimes) or '-'} (serves {backend})"
        )
    for rt, mb in own_file.items():
        print(
            f"of the own share on {rt}: {mb:.1f} MB file-backed (library pages the agent "
            f"touched beyond the import), {own[rt] - mb:.1f} MB anonymous"
        )
    worst = max(own.values())
    verdict = "met" if worst <= GOAL_OWN_MB else "NOT met"
    if set(own) != set(PINS):  # the goal is the worst runtime's: say which were measured
        verdict += f" on {', '.join(own)} only (the goal is the worst of {', '.join(PINS)})"
    print(f"goal own <= {GOAL_OWN_MB:g} MB: {verdict}")
    print(
        f"goal idle <= {GOAL_IDLE_MB:g} MB: {'met' if idle.rss_mb <= GOAL_IDLE_MB else 'NOT met'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
