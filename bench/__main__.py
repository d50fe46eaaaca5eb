"""Run every benchmark, each in its own process, and fail if one fails.

    python -m bench [--quick] [NAME ...]

Runs ``python -m bench.NAME`` (with ``--quick``: ``python -m bench.NAME --quick``) for
every benchmark in ``BENCHMARKS``, or those named, one after another from the repository
root. A benchmark passes when it exits 0 and the last line of its standard output is a
JSON object (its figures). Quick runs print one line per benchmark (the output of one
that fails follows it); full runs print each benchmark's own output. Exits 1 if any
failed, 2 on bad arguments.

Every module of ``bench/`` is either a benchmark or a helper (``HELPERS``): a module
that is neither fails the run, so that a new benchmark cannot be left out of it.
``make bench-quick`` (and ``make test``, after pytest) run ``python -m bench --quick``;
``make bench`` runs them in full.
"""

from __future__ import annotations

import argparse
import json
import pkgutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench

#: the benchmarks, in the order they run (each is ``python -m bench.NAME [--quick]``)
BENCHMARKS = (
    "inference",
    "serving",
    "selection",
    "agent_start",
    "footprint",
    "hotswap",
    "ingest_auth",
    "multimodel",
    "fleet_scale",
    "peers",
    "shadow",
)
#: modules of ``bench/`` that are not benchmarks
HELPERS = frozenset(
    {
        "fleet",
        "local_api_ab",
        "models",
        "oip_clients",
        "oip_grpc_clients",
        "options",
        "page_cache",
        "peers_envs",
        "peers_runtimes",
        "report_flood",
        "rest_paths",
        "scale_stack",
        "selection_memory",
        "selection_models",
        "selection_table",
        "tcp_floor",
    }
)
#: seconds one benchmark may take
TIMEOUT_QUICK_S = 180.0
TIMEOUT_FULL_S = 1800.0
#: lines of a failed benchmark's output shown
TAIL = 40
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    #: why it failed; None when it passed
    failure: str | None
    output: str


def unclassified() -> list[str]:
    """Modules of ``bench/`` that are neither in ``BENCHMARKS`` nor in ``HELPERS``."""
    known = {*BENCHMARKS, *HELPERS}
    names = (m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    return sorted(name for name in names if name not in known)


def last_json(stdout: str) -> dict[str, object] | None:
    """The JSON object on the last non-empty line of ``stdout``, else None."""
    lines = stdout.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def run_one(name: str, *, quick: bool, timeout: float) -> Outcome:
    """``python -m bench.NAME [--quick]`` from the repository root."""
    argv = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        return Outcome(name, time.monotonic() - started, f"timed out after {timeout:g} s", output)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    if done.returncode != 0:
        return Outcome(name, seconds, f"exited with code {done.returncode}", output)
    if last_json(done.stdout) is None:
        return Outcome(name, seconds, "its last line of output is not a JSON object", output)
    return Outcome(name, seconds, None, done.stdout)


def _text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="each benchmark with --quick")
    parser.add_argument("--timeout", type=float, help="seconds one benchmark may take")
    args = parser.parse_args(argv)
    if unknown := [n for n in args.names if n not in BENCHMARKS]:
        parser.error(f"not a benchmark: {', '.join(unknown)} (of: {', '.join(BENCHMARKS)})")
    if stray := unclassified():
        print(
            f"bench: module(s) {', '.join(stray)} are neither in BENCHMARKS nor in HELPERS "
            "(bench/__main__.py): add each to one",
            file=sys.stderr,
        )
        return 1
    timeout = args.timeout or (TIMEOUT_QUICK_S if args.quick else TIMEOUT_FULL_S)
    mode = "quick" if args.quick else "full"
    failed: list[str] = []
    started = time.monotonic()
    for name in args.names or BENCHMARKS:
        if not args.quick:
            print(f"== python -m bench.{name}", flush=True)
        outcome = run_one(name, quick=args.quick, timeout=timeout)
        if outcome.failure is None:
            if not args.quick:
                print(outcome.output, end="")
            print(f"ok      bench.{name} ({mode}) in {outcome.seconds:.1f} s", flush=True)
            continue
        failed.append(name)
        tail = outcome.output.rstrip().splitlines()[-TAIL:]
        print(f"FAILED  bench.{name} ({mode}): {outcome.failure}, after {outcome.seconds:.1f} s")
        for line in tail:
            print(f"  | {line}")
        sys.stdout.flush()
    total = time.monotonic() - started
    if failed:
        print(f"bench: {len(failed)} failed ({', '.join(failed)}) in {total:.1f} s")
        return 1
    print(f"bench: all passed ({mode}) in {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
