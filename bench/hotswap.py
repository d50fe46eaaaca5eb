"""p99 latency while a new model version swaps in, against steady state; failed requests.

    python -m bench.hotswap [--clients 4] [--steady 3.0] [--quick]

A real one-device fleet (``bench.fleet``): control plane + embedded broker + one
``edge-agent run`` process serving ``cnn-64px`` 1.0.0. ``--clients`` threads send OIP REST
requests back to back (keep-alive httpx clients) the whole time. Steady state: ``--steady``
seconds before anything happens. Swap window: from the moment ``edgectl``'s push of 1.1.0
starts (upload, deployment command, download, verification, load and health gate on the
device, atomic swap) until the control plane reports 1.1.0 active, plus 0.5 s. Both are
measured in the same run on the same box. Prints a table, then one JSON line with
``p99_steady_ms``, ``p99_swap_ms`` and ``failed_requests`` last; exits 1 if a request
failed. ``--quick``: 2 clients, 1 s of steady state.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.fleet import BenchFleet, oip_json_body
from bench.models import catalogue
from bench.options import parse_args


@dataclass
class Traffic:
    url: str
    body: dict[str, object]
    clients: int
    stop: threading.Event = field(default_factory=threading.Event)
    #: (start monotonic, latency ms, ok, model_version)
    samples: list[tuple[float, float, bool, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for t in threads:
            t.start()
        return threads

    def _client(self) -> None:
        payload = json.dumps(self.body).encode()  # encoded once: time the server, not us
        headers = {"content-type": "application/json"}
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                start = time.monotonic()
                ok, version = False, ""
                try:
                    response = http.post(self.url, content=payload, headers=headers)
                    ok = response.status_code == 200
                    version = str(response.json().get("model_version", "")) if ok else ""
                except httpx.HTTPError:
                    pass
                elapsed = (time.monotonic() - start) * 1000
                with self.lock:
                    self.samples.append((start, elapsed, ok, version))

    def window(self, start: float, end: float) -> list[tuple[float, float, bool, str]]:
        with self.lock:
            return [s for s in self.samples if start <= s[0] < end]


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotswap")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--steady", type=float, default=3.0)
    args = parse_args(parser, argv, clients=2, steady=1.0)
    spec = next(m for m in catalogue() if m.name == "cnn-64px")
    with (
        tempfile.TemporaryDirectory(prefix="ef-bench-swap-") as tmp,
        BenchFleet(Path(tmp)) as fleet,
    ):
        model = spec.build(Path(tmp) / "model" / "cnn.onnx")
        fleet.serve(model, name="cnn", version="1.0.0")
        traffic = Traffic(
            f"{fleet.local_api}/v2/models/cnn/infer", oip_json_body(spec.feeds()), args.clients
        )
        threads = traffic.run()
        time.sleep(1.0)  # connections up, caches warm
        steady_start = time.monotonic()
        time.sleep(args.steady)
        swap_start = time.monotonic()
        fleet.push(model, name="cnn", version="1.1.0")
        swap_end = time.monotonic() + 0.5
        time.sleep(1.0)
        traffic.stop.set()
        for t in threads:
            t.join(30)
    steady = traffic.window(steady_start, swap_start)
    swap = traffic.window(swap_start, swap_end)
    failed = sum(1 for s in traffic.samples if not s[2])
    versions = [s[3] for s in traffic.samples if s[2]]
    rows = [
        ("steady state (1.0.0)", steady),
        (f"swap 1.0.0 -> 1.1.0 ({swap_end - swap_start:.1f} s)", swap),
    ]
    print(f"hot swap under load: {args.clients} clients, cnn-64px, OIP REST JSON")
    print(f"{'window':<36} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failed':>6}")
    for label, window in rows:
        lat = [s[1] for s in window if s[2]]
        print(
            f"{label:<36} {len(window):>8} {_p(lat, 50):>8.2f} {_p(lat, 99):>8.2f} "
            f"{max(lat, default=float('nan')):>8.2f} {sum(1 for s in window if not s[2]):>6}"
        )
    print(
        f"total requests {len(traffic.samples)}, failed {failed}, "
        f"answered by 1.0.0: {versions.count('1.0.0')}, by 1.1.0: {versions.count('1.1.0')}"
    )
    print(
        json.dumps(
            {
                "p99_steady_ms": round(_p([s[1] for s in steady if s[2]], 99), 3),
                "p99_swap_ms": round(_p([s[1] for s in swap if s[2]], 99), 3),
                "p50_steady_ms": round(_p([s[1] for s in steady if s[2]], 50), 3),
                "p50_swap_ms": round(_p([s[1] for s in swap if s[2]], 50), 3),
                "swap_window_s": round(swap_end - swap_start, 3),
                "failed_requests": failed,
                "requests": len(traffic.samples),
                "clients": args.clients,
                "quick": args.quick,
            }
        )
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
