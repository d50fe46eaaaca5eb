"""Fair share of the box between served models (``agent.serving.fairshare``): the plan by
priority, the bounded gate, and a light model that keeps answering through the agent's
real local API while a heavy one (real ONNX models built in code, on ONNX Runtime) is
flooded. Judged by request success and order, never by timing."""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.runners import create_runner_for
from agent.runners.spec import CandidateSpec
from agent.serving import ServedModels, placement
from agent.serving.fairshare import QUEUE_MIN, Gate, Overloaded, Share, Want, plan, want_for
from agent.serving.local_api import LocalApiServer, build_app
from bench.multimodel import HEAVY, LIGHT, build_heavy, bundle, serve
from bench.oip_clients import HEAVY_IMAGE, post, post_image
from model_store import BundleServing, load_metadata
from protocol import Priority
from tests.support.onnx_models import affine_model

LIGHT_BODY = (
    b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'
)


def test_a_model_alone_gets_the_whole_box_without_a_limit() -> None:
    assert plan(8, {"a": Want(Priority.LOW)}) == {"a": Share(Priority.LOW, 8, None)}


def test_cores_are_shared_by_priority_and_overrides_win() -> None:
    shares = plan(
        8, {"hi": Want(Priority.HIGH), "mid": Want(), "lo": Want(Priority.LOW, concurrency=3)}
    )
    assert shares["hi"] == Share(Priority.HIGH, 4, 4)
    assert shares["mid"] == Share(Priority.NORMAL, 2, 2, frozenset({4, 5}))
    assert shares["lo"] == Share(Priority.LOW, 1, 3, frozenset({6}))
    assert plan(2, {"a": Want(threads=6), "b": Want()})["a"].threads == 6
    assert plan(2, {"a": Want(Priority.LOW), "b": Want(Priority.LOW)})["a"].threads == 1


def test_models_below_the_highest_priority_are_confined_to_cores_of_their_own() -> None:
    pair = plan((0, 1), {"light": Want(Priority.HIGH), "heavy": Want()})
    assert pair["light"].cores is None  # the highest level runs anywhere
    assert pair["heavy"].cores == frozenset({1})
    # the core ids are the process's own, not 0..n-1
    assert plan((2, 5), {"a": Want(Priority.HIGH), "b": Want()})["b"].cores == frozenset({5})
    # when the cores run out the lowest levels share the last ones
    three = plan(2, {"a": Want(Priority.HIGH), "b": Want(), "c": Want(Priority.LOW)})
    assert three["b"].cores == three["c"].cores == frozenset({1})
    # one level, one core, or one model: nothing is confined
    assert all(s.cores is None for s in plan(4, {"a": Want(), "b": Want()}).values())
    assert all(s.cores is None for s in plan(1, {"a": Want(Priority.HIGH), "b": Want()}).values())
    assert plan(4, {"a": Want(Priority.LOW)})["a"].cores is None
    # never every core, even for a model asking for more threads than there are
    assert plan(4, {"a": Want(Priority.HIGH), "b": Want(threads=8)})["b"].cores == frozenset({2, 3})


def test_the_deployment_priority_wins_over_the_bundle() -> None:
    serving = BundleServing(priority=Priority.LOW, threads=2)
    assert want_for(serving, Priority.HIGH) == Want(Priority.HIGH, threads=2)
    assert want_for(serving, None).priority is Priority.LOW
    assert want_for(None, None) == Want()


def test_the_gate_queues_then_refuses_at_once() -> None:
    gate = Gate("m", 1)
    release, holding = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot():
            holding.set()
            release.wait(30)

    def queue() -> None:
        with gate.slot():
            pass

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    assert holding.wait(30)
    threads += [threading.Thread(target=queue) for _ in range(QUEUE_MIN)]
    for t in threads[1:]:
        t.start()
    while gate.waiting < QUEUE_MIN:
        threading.Event().wait(0.01)
    with pytest.raises(Overloaded, match="overloaded"), gate.slot():
        pass
    release.set()
    for t in threads:
        t.join(30)
    assert gate.running == 0 and gate.waiting == 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedModels, int]]:
    models = ServedModels()
    models.cores = tuple(sorted(os.sched_getaffinity(0)))[:2]
    light_bundle = bundle(tmp_path, LIGHT, affine_model)
    heavy_bundle = bundle(tmp_path, HEAVY, build_heavy)
    wants = {LIGHT: Want(Priority.HIGH), HEAVY: Want(Priority.NORMAL, concurrency=1)}
    # the heavy one arrives second: it is loaded with its share of the pair
    serve(models, {LIGHT: light_bundle, HEAVY: heavy_bundle}, wants)
    server = LocalApiServer(build_app(models, server_version="t"), "127.0.0.1", 0)
    url = server.start()
    yield models, int(url.rsplit(":", 1)[1])
    server.stop(10)
    models.clear()


def test_a_light_model_keeps_answering_while_a_heavy_one_is_flooded(
    served: tuple[ServedModels, int],
) -> None:
    models, port = served
    heavy = models.get(HEAVY)
    assert heavy.share is not None and heavy.share.concurrency == 1
    assert heavy.share.threads == 1  # loaded with its share, not every core
    gate = heavy._gate
    assert gate is not None
    done = threading.Event()
    statuses: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def flood() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not done.is_set():
            status = post_image(conn, HEAVY, HEAVY_IMAGE)
            with lock:
                statuses.append((status, b""))
        conn.close()

    clients = [threading.Thread(target=flood) for _ in range(QUEUE_MIN + 8)]
    for t in clients:
        t.start()
    while gate.waiting < QUEUE_MIN:  # the heavy model's queue is full
        threading.Event().wait(0.01)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    light: list[int] = []
    heavy_queued_meanwhile: list[int] = []
    for _ in range(30):
        status, body = post(conn, LIGHT, LIGHT_BODY)
        light.append(status)
        assert status == 200, body
        heavy_queued_meanwhile.append(gate.waiting)
    conn.close()
    done.set()
    for t in clients:
        t.join(60)
    assert light == [200] * 30
    # the light answers came while heavy requests were still waiting their turn
    assert any(heavy_queued_meanwhile)
    heavy_statuses = [s for s, _ in statuses]
    assert set(heavy_statuses) <= {200, 503} and 200 in heavy_statuses
    refused = heavy_statuses.count(503)
    errors = heavy._stats.snapshot().errors if heavy._stats is not None else {}
    assert errors.get("overloaded", 0) == refused
    light_errors = models.get(LIGHT)._stats
    assert light_errors is not None and sum(light_errors.snapshot().errors.values()) == 0


def test_a_refusal_is_a_clear_503(served: tuple[ServedModels, int]) -> None:
    models, port = served
    gate = models.get(HEAVY)._gate
    assert gate is not None
    gate.set_limit(1)
    release = threading.Event()
    holders = [threading.Thread(target=_hold, args=(gate, release)) for _ in range(QUEUE_MIN + 1)]
    for t in holders:
        t.start()
    while gate.running < 1 or gate.waiting < QUEUE_MIN:
        threading.Event().wait(0.01)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    status, body = post(conn, HEAVY, b"{}")
    conn.close()
    release.set()
    for t in holders:
        t.join(30)
    assert status == 503
    assert b"overloaded" in body and b"\n" not in body.strip()


def _hold(gate: Gate, release: threading.Event) -> None:
    with gate.slot():
        release.wait(30)


def test_the_light_answer_is_right(served: tuple[ServedModels, int]) -> None:
    _, port = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    status, body = post(conn, LIGHT, LIGHT_BODY)
    conn.close()
    assert status == 200
    assert np.allclose(_first_output(body), [3, 5, 7, 9])


def _first_output(body: bytes) -> list[float]:
    return list(json.loads(body)["outputs"][0]["data"])


class _Recording:
    """A served model's real runner, noting the cores each inference's thread may use."""

    def __init__(self, runner: Any, seen: list[set[int]]) -> None:
        self._runner = runner
        self._seen = seen

    def infer(self, inputs: Any) -> Any:
        self._seen.append(os.sched_getaffinity(0))
        return self._runner.infer(inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


TWO_CORES = placement.SUPPORTED and len(os.sched_getaffinity(0)) >= 2
needs_two_cores = pytest.mark.skipif(not TWO_CORES, reason="confining needs Linux, 2 cores")


@needs_two_cores
def test_a_confined_model_is_run_on_its_cores_and_the_thread_gets_them_back(
    served: tuple[ServedModels, int],
) -> None:
    models, port = served
    every = os.sched_getaffinity(0)
    heavy_cores = models.get(HEAVY).share.cores  # type: ignore[union-attr]
    assert heavy_cores and set(heavy_cores) < every
    seen: dict[str, list[set[int]]] = {LIGHT: [], HEAVY: []}
    for name in seen:
        model = models.get(name)
        model.runner = _Recording(model.runner, seen[name])  # type: ignore[assignment]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    # one keep-alive connection (one server thread): heavy, light, heavy, light
    for _ in range(2):
        assert post_image(conn, HEAVY, HEAVY_IMAGE) == 200
        status, body = post(conn, LIGHT, LIGHT_BODY)
        assert status == 200, body
    conn.close()
    assert seen[HEAVY] == [set(heavy_cores)] * 2
    assert seen[LIGHT] == [every] * 2  # the highest priority runs anywhere
    # an in-process call is confined too, and this thread gets its cores back
    models.get(HEAVY).infer({"image": HEAVY_IMAGE})
    assert seen[HEAVY][-1] == set(heavy_cores)
    assert os.sched_getaffinity(0) == every


@needs_two_cores
def test_a_backend_loaded_while_confined_starts_its_threads_on_those_cores(
    tmp_path: Path,
) -> None:
    core = max(os.sched_getaffinity(0))
    out = bundle(tmp_path, HEAVY, build_heavy)
    runner = create_runner_for(CandidateSpec("onnxruntime", "CPUExecutionProvider", "f32", "", 2))
    before = _tasks()
    with placement.confined({core}):
        runner.load(out, load_metadata(out))
    try:
        started = _tasks() - before  # ONNX Runtime's intra-op thread(s), made at load
        assert started
        assert all(_allowed(tid) == {core} for tid in started)
        assert runner.infer({"image": HEAVY_IMAGE})["logits"].shape == (1, 10)
    finally:
        runner.close()


def _tasks() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _allowed(tid: str) -> set[int]:
    """The cores thread ``tid`` of this process may run on."""
    return os.sched_getaffinity(int(tid))


@needs_two_cores
def test_cores_the_process_may_not_use_leave_the_thread_as_it_is() -> None:
    every = os.sched_getaffinity(0)
    with placement.confined({4096}):  # no such core here: the work runs where it was
        assert os.sched_getaffinity(0) == every
    assert os.sched_getaffinity(0) == every
