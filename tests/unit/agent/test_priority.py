"""The lowest CPU priority for a shadow (``agent.serving.priority``): work run at it
hands back its result or its error, the caller keeps its own priority, and the threads
a runner's load creates (ONNX Runtime's pool, for real) inherit it."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest

from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.serving.priority import at_idle_priority
from model_store import build_bundle, load_metadata
from tests.support.onnx_models import two_input_model
from tests.support.threads import policy, thread_ids

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def test_the_work_runs_at_the_lowest_priority_and_its_threads_inherit_it() -> None:
    seen: dict[str, int] = {}

    def child() -> None:
        seen["child"] = os.sched_getscheduler(0)

    def work() -> str:
        seen["work"] = os.sched_getscheduler(0)
        thread = threading.Thread(target=child)
        thread.start()
        thread.join()
        return "done"

    before = os.sched_getscheduler(0)
    assert at_idle_priority(work, what="test") == "done"
    assert seen == {"work": os.SCHED_IDLE, "child": os.SCHED_IDLE}
    assert os.sched_getscheduler(0) == before  # the caller's own is untouched


def test_the_works_error_is_raised_to_the_caller() -> None:
    def work() -> None:
        raise ValueError("bad bundle")

    with pytest.raises(ValueError, match="bad bundle"):
        at_idle_priority(work, what="test")


def test_a_runner_loaded_at_idle_priority_has_its_runtime_pool_there_too(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build_bundle(two_input_model(tmp_path / "src" / "model.onnx"), bundle, name="m", version="1")
    metadata = load_metadata(bundle)
    spec = dataclasses.replace(OnnxRuntimeRunner.own_default_spec(), threads=3)

    def load() -> OnnxRuntimeRunner:
        runner = OnnxRuntimeRunner(spec)
        runner.load(bundle, metadata)
        return runner

    before = thread_ids()
    shadow = at_idle_priority(load, what="test")
    try:
        # three intra-op threads: the caller and a pool of two; the idle loader may still
        # be listed (joined, not yet gone) or end meanwhile (None)
        live = {t: p for t in thread_ids() - before if (p := policy(t)) is not None}
        assert len(live) >= 2, live
        assert set(live.values()) == {os.SCHED_IDLE}, live
    finally:
        shadow.close()
    before = thread_ids()
    serving = load()  # loaded by a thread at normal priority: its pool stays there
    try:
        created = thread_ids() - before
        assert len(created) >= 2, created
        assert os.SCHED_IDLE not in {policy(t) for t in created}
    finally:
        serving.close()
