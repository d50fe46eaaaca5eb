"""Hot swap under load, the health gate, duplicate and out-of-order commands, the cache.

Four clients send OIP requests to the agent's local REST API without pause while new
versions are deployed over a real broker: no request fails, every response is wholly
from one version (its outputs equal that version's own, computed here with a plain
onnxruntime session), each client sees versions change once and in order, and a version
that fails the health gate never answers a single request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from protocol import EventKind
from tests.support.deploy import Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
#: a signed, valid bundle whose outputs are NaN: it must fail the health gate
NAN = float("nan")

X = (np.arange(8, dtype=np.float32).reshape(2, 4) / 10).astype(np.float32)
IDS = np.array([3, 4], dtype=np.int64)
BODY = {
    "inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()},
        {"name": "ids", "shape": [2], "datatype": "INT64", "data": IDS.tolist()},
    ]
}


def _expected(bundle_dir: Path) -> np.ndarray:
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"))
    return np.asarray(session.run(["y"], {"x": X, "ids": IDS})[0])


@dataclass
class Load:
    """``clients`` threads sending requests back to back until stopped."""

    url: str
    clients: int = 4
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    #: per client, in order: (model_version, y)
    seen: list[list[tuple[str, np.ndarray]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.seen = [[] for _ in range(self.clients)]
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self.clients)
        ]

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(self.url, json=BODY)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    with self.lock:
                        self.failures.append(f"HTTP {response.status_code}: {response.text}")
                    continue
                answer = response.json()
                y = next(o for o in answer["outputs"] if o["name"] == "y")
                array = np.asarray(y["data"], dtype=np.float32).reshape(y["shape"])
                self.seen[index].append((answer["model_version"], array))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def count(self) -> int:
        return sum(len(s) for s in self.seen)


def test_hot_swap_under_load_drops_nothing_and_gated_versions_never_serve(setup: Setup) -> None:
    versions = {"1.0.0": setup.bundle("det", "1.0.0", weight=0.5)}
    setup.watcher.desire(1, setup.assignment(versions["1.0.0"]))
    with setup.agent() as agent:
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "v1 active")
        assert agent.local_api_url is not None
        with Load(f"{agent.local_api_url}/v2/models/det/infer") as load:
            wait_until(lambda: load.count() > 50, 30, "steady traffic")
            # a good version swaps in under load
            versions["2.0.0"] = setup.bundle("det", "2.0.0", weight=3.0)
            setup.watcher.desire(2, setup.assignment(versions["2.0.0"], deployment_id=2))
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "v2")
            # a version with NaN outputs fails the gate and is rolled back under load
            nan = setup.bundle("det", "3.0.0", weight=NAN)
            setup.watcher.desire(3, setup.assignment(nan, deployment_id=3))
            wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("3.0.0"), 30, "v3 FAILED")
            # and another good one after it
            versions["4.0.0"] = setup.bundle("det", "4.0.0", weight=-1.0)
            setup.watcher.desire(4, setup.assignment(versions["4.0.0"], deployment_id=4))
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("4.0.0"), 30, "v4")
            before = load.count()
            wait_until(lambda: load.count() > before + 50, 30, "traffic on v4")
        failed = [e for e in setup.watcher.events if e.kind == EventKind.FAILED][-1]
        assert failed.reason is not None and "not finite" in failed.reason
        assert "kept det 2.0.0" in failed.reason  # gated out before it switched
        assert agent.active[0].version == "4.0.0"

    assert load.failures == []
    expected = {v: _expected(d) for v, d in versions.items()}
    order = list(expected)
    for per_client in load.seen:
        assert per_client, "a client got no answer at all"
        for version, y in per_client:
            assert version in expected, f"{version} answered (it failed the gate)"
            np.testing.assert_allclose(y, expected[version], rtol=1e-6)
        # versions only move forward, each client sees them in deployment order
        indices = [order.index(v) for v, _ in per_client]
        assert indices == sorted(indices)
    assert {v for c in load.seen for v, _ in c} == set(order)


def test_duplicate_and_out_of_order_commands(setup: Setup) -> None:
    v1, v2 = setup.bundle("det", "1.0.0"), setup.bundle("det", "2.0.0", weight=2.0)
    a1, a2 = setup.assignment(v1), setup.assignment(v2, deployment_id=2)
    with setup.agent() as agent:
        first = setup.watcher.desire(5, a2)
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "gen 5")
        fetched = len(setup.blobs.requests)
        # the same command again, retained and not: nothing is downloaded or re-activated
        setup.watcher.command(first)
        setup.watcher.raw(first.model_dump_json(by_alias=True).encode(), retain=False)
        # an older generation arrives late: refused, v2 keeps serving
        setup.watcher.desire(4, a1)
        wait_until(lambda: agent.refused_commands >= 1, 15, "late generation refused")
        assert agent.last_error is not None and "lower than the accepted 5" in agent.last_error
        assert [m.version for m in agent.active] == ["2.0.0"] and agent.generation == 5
        assert setup.watcher.kinds("2.0.0").count(EventKind.ACTIVATED) == 1
        assert EventKind.RECEIVED not in setup.watcher.kinds("1.0.0")
        assert len(setup.blobs.requests) == fetched
        # a newer one still goes through; then v2 comes back from the cache at once
        # (rollback by a new generation is local: the previous bundle is kept)
        setup.watcher.desire(6, a1)
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "gen 6")
        assert [m.version for m in agent.active] == ["1.0.0"]
        fetched = len(setup.blobs.requests)
        setup.watcher.desire(7, a2)
        wait_until(lambda: agent.generation == 7, 30, "gen 7")
        assert [m.version for m in agent.active] == ["2.0.0"]
        assert len(setup.blobs.requests) == fetched


def test_cache_keeps_a_bounded_number_of_versions(setup: Setup) -> None:
    with setup.agent(cache_versions=2) as agent:
        digests = []
        for generation in range(1, 5):
            version = f"{generation}.0.0"
            bundle = setup.bundle("det", version, weight=float(generation))
            a = setup.assignment(bundle, deployment_id=generation)
            digests.append(a.bundle_digest)
            setup.watcher.desire(generation, a)
            wait_until(lambda v=version: EventKind.ACTIVATED in setup.watcher.kinds(v), 30, version)
        cached = sorted(p.name for p in (agent.config.data_dir / "models").iterdir())
        # the active version (4) and the previous one (3) stay; 1 and 2 are collected
        assert cached == sorted(digests[2:])
