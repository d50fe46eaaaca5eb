"""Bounded downloads: declared sizes, a whole-bundle deadline, stalls, and bundle
constraints checked before any model file is downloaded. Nothing refused is installed
and the previous model keeps serving. Resumable downloads: an agent killed with SIGKILL
mid-transfer resumes with Range after its restart; a disk that fills while staging
fails the deployment cleanly (no partial files, a clear reason) and is retried.

Real Mosquitto, a real HTTP blob server that misbehaves on purpose, real bundles, a real
``edge-agent run`` process for the SIGKILL, a real tmpfs for the full disk."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent import Agent
from model_store import build_bundle, load_private_key, sign_bundle
from protocol import DeviceStatus, EventKind, ModelAssignment
from tests.support.agent_process import AgentProcess
from tests.support.deploy import Setup
from tests.support.downloads import fill, padded_model, small_tmpfs
from tests.support.onnx_models import two_input_model
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
X: dict[str, np.ndarray] = {
    "x": np.ones((1, 4), dtype=np.float32),
    "ids": np.array([3], dtype=np.int64),
}
SLOW_RETRY = (600.0, 600.0)  # a transient failure is not retried during the test


def _serving_v1(setup: Setup, **settings: Any) -> Agent:
    setup.watcher.desire(1, setup.assignment(setup.bundle("det", "1.0.0")))
    agent = setup.agent(retry_backoff_s=SLOW_RETRY, **settings)
    agent.start()
    wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "v1 ACTIVATED")
    return agent


def _failure(setup: Setup, version: str, kind: EventKind = EventKind.FAILED) -> str:
    """The reason of the first ``kind`` event of ``version``: ``failed`` (the agent gave
    up) or ``retrying`` (it tries again by itself; the reason says when, after what
    failed, and only what failed is returned)."""
    wait_until(lambda: kind in setup.watcher.kinds(version), 20, f"{version} {kind}")
    reason = next(
        e.reason for e in setup.watcher.events if e.kind is kind and e.model_version == version
    )
    assert reason is not None and "\n" not in reason
    if kind is EventKind.RETRYING:
        reason, _, when = reason.partition("; retrying ")
        assert when, reason
    return reason


def _fetched(setup: Setup, sha256: str) -> bool:
    return any(sha256 in path for path, _ in setup.blobs.requests)


def _assert_nothing_installed(agent: Agent, a: ModelAssignment, *, transient: bool = False) -> None:
    """Nothing of ``a`` installed; after a ``transient`` failure its partial files may be
    kept in staging for the retry to resume, but the model file is not complete there."""
    data = agent.config.data_dir
    staging = data / "staging" / a.bundle_digest
    assert not (data / "models" / a.bundle_digest).exists()
    if transient:
        assert not (staging / "model.onnx").exists()
    else:
        assert not staging.exists()
    assert [m.version for m in agent.active] == ["1.0.0"]
    assert agent.status == DeviceStatus.ACTIVE
    assert agent.infer("det", X)["y"].shape == (1, 3)  # the previous model still serves


def _model_ref(a: ModelAssignment) -> Any:
    return next(f for f in a.files if f.path == "model.onnx")


def test_sizes_and_constraints_are_checked_before_downloading(setup: Setup) -> None:
    agent = _serving_v1(setup)
    try:
        # 1. the declared total does not add up: refused before any request
        a2 = setup.assignment(setup.bundle("det", "2.0.0", weight=2.0), deployment_id=2)
        a2 = a2.model_copy(update={"size": a2.size + 1})
        before = len(setup.blobs.requests)
        setup.watcher.desire(2, a2)
        assert "declared bundle size" in _failure(setup, "2.0.0")
        assert len(setup.blobs.requests) == before
        _assert_nothing_installed(agent, a2)

        # 2. the server announces more than declared (Content-Length): refused at once
        a3 = setup.assignment(setup.bundle("det", "3.0.0", weight=3.0), deployment_id=3)
        ref = _model_ref(a3)
        setup.blobs.blobs[ref.sha256] += b"\0" * 4096
        setup.watcher.desire(3, a3)
        assert "more than the declared" in _failure(setup, "3.0.0")
        _assert_nothing_installed(agent, a3)

        # 3. ...or just streams more (chunked, no length): cut off at the declared size
        setup.blobs.chunked = True
        a4 = setup.assignment(setup.bundle("det", "4.0.0", weight=4.0), deployment_id=4)
        setup.blobs.blobs[_model_ref(a4).sha256] += b"\0" * (1 << 20)
        setup.watcher.desire(4, a4)
        assert f"more than the declared {_model_ref(a4).size} bytes" in _failure(setup, "4.0.0")
        _assert_nothing_installed(agent, a4)
        setup.blobs.chunked = False

        # 4. a bundle whose constraints this host does not meet: only edgefleet.json is read
        src = two_input_model(setup.tmp / "src-big" / "model.onnx", weight=5.0)
        out = setup.tmp / "bundles" / "det-5.0.0"
        build_bundle(src, out, name="det", version="5.0.0", constraints={"min_ram_bytes": 2**50})
        sign_bundle(out, load_private_key(setup.kit.release_key))
        a5 = setup.assignment(out, deployment_id=5)
        setup.watcher.desire(5, a5)
        reason = _failure(setup, "5.0.0")
        assert reason.startswith("cannot meet bundle constraints: "), reason
        meta = next(f for f in a5.files if f.path == "edgefleet.json")
        assert _fetched(setup, a5.signature.sha256) and _fetched(setup, meta.sha256)
        assert not _fetched(setup, _model_ref(a5).sha256)
        _assert_nothing_installed(agent, a5)
        assert agent.last_error is not None and "5.0.0" in agent.last_error
    finally:
        agent.stop()


def test_a_dripping_server_is_aborted_by_the_bundle_deadline(setup: Setup) -> None:
    agent = _serving_v1(setup, download_timeout_s=1.5)
    try:
        a2 = setup.assignment(setup.bundle("det", "2.0.0", weight=2.0), deployment_id=2)
        setup.blobs.drip[_model_ref(a2).sha256] = 0.02  # one byte every 20 ms: far too slow
        started = time.monotonic()
        setup.watcher.desire(2, a2)
        reason = _failure(setup, "2.0.0", EventKind.RETRYING)
        assert "bundle download exceeded 1.5s" in reason
        assert time.monotonic() - started < 6
        _assert_nothing_installed(agent, a2, transient=True)
    finally:
        agent.stop()


def test_a_stalled_transfer_is_broken_off(setup: Setup) -> None:
    agent = _serving_v1(setup, download_stall_timeout_s=0.3)
    try:
        a2 = setup.assignment(setup.bundle("det", "2.0.0", weight=2.0), deployment_id=2)
        setup.blobs.drip[_model_ref(a2).sha256] = 5.0  # one byte, then silence
        setup.watcher.desire(2, a2)
        reason = _failure(setup, "2.0.0", EventKind.RETRYING)
        assert "model.onnx: no data for 0.3s" in reason
        _assert_nothing_installed(agent, a2, transient=True)
        assert agent.last_error is not None and "no data" in agent.last_error
    finally:
        agent.stop()


# -- resumable downloads ----------------------------------------------------------------

PAD = 512 * 1024  # a model file big enough to be caught mid-transfer


def _big_assignment(setup: Setup, version: str, deployment_id: int = 1) -> ModelAssignment:
    src = padded_model(setup.tmp / f"src-big-{version}" / "model.onnx", pad_bytes=PAD)
    out = setup.tmp / "bundles" / f"det-big-{version}"
    build_bundle(src, out, name="det", version=version)
    sign_bundle(out, load_private_key(setup.kit.release_key))
    return setup.assignment(out, deployment_id=deployment_id)


def _agent_process(setup: Setup, data_dir: Path) -> AgentProcess:
    """``edge-agent run`` as its own process (so that it can be killed with SIGKILL)."""
    config = setup.process_config(data_dir)
    return AgentProcess(config, setup.tmp / "agent-process.log").start()


def test_a_download_killed_mid_transfer_resumes_after_a_restart(setup: Setup) -> None:
    a = _big_assignment(setup, "1.0.0")
    model = _model_ref(a)
    half = model.size // 2
    setup.blobs.hold_once[model.sha256] = half  # half the model, then the line goes quiet
    setup.watcher.desire(1, a)
    data_dir = setup.tmp / "agent-data"
    part = data_dir / "staging" / a.bundle_digest / "model.onnx.part"
    proc = _agent_process(setup, data_dir)
    try:
        wait_until(lambda: part.is_file() and part.stat().st_size == half, 60, "half staged")
    finally:
        assert proc.process is not None
        proc.process.kill()  # SIGKILL: no clean-up of any kind
    assert proc.wait(10) == -signal.SIGKILL
    assert part.stat().st_size == half

    with setup.agent(data_dir) as agent:  # the restarted agent, on the same data_dir
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 30, "ACTIVATED")
        ranges = [r for p, r in setup.blobs.requests if model.sha256 in p]
        assert ranges == [None, f"bytes={half}-"]
        assert setup.blobs.served[model.sha256] == model.size  # the prefix was not sent again
        assert [m.version for m in agent.active] == ["1.0.0"]
        assert agent.infer("det", X)["y"].shape == (1, 3)
        assert not (data_dir / "staging" / a.bundle_digest).exists()


def test_the_retry_after_a_transient_failure_resumes_the_download(setup: Setup) -> None:
    a = _big_assignment(setup, "1.0.0")
    model = _model_ref(a)
    half = model.size // 2
    setup.blobs.hold_once[model.sha256] = half  # then silence until the deadline
    setup.watcher.desire(1, a)
    with setup.agent(retry_backoff_s=(0.5, 0.5), download_timeout_s=1.0) as agent:
        assert "bundle download exceeded 1s" in _failure(setup, "1.0.0", EventKind.RETRYING)
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
        ranges = [r for p, r in setup.blobs.requests if model.sha256 in p]
        assert ranges == [None, f"bytes={half}-"]
        assert setup.blobs.served[model.sha256] == model.size
        assert agent.infer("det", X)["y"].shape == (1, 3)


def test_a_disk_that_fills_while_staging_fails_cleanly_and_is_retried(setup: Setup) -> None:
    with small_tmpfs(setup.tmp / "agent-data", "2m") as data_dir:
        setup.watcher.desire(1, setup.assignment(setup.bundle("det", "1.0.0")))
        agent = setup.agent(data_dir, retry_backoff_s=(0.5, 1.0))
        agent.start()
        try:
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "v1")
            a2 = _big_assignment(setup, "2.0.0", deployment_id=2)
            model = _model_ref(a2)
            half = model.size // 2
            setup.blobs.hold_once[model.sha256] = half
            setup.watcher.desire(2, a2)
            part = data_dir / "staging" / a2.bundle_digest / "model.onnx.part"
            wait_until(lambda: part.is_file() and part.stat().st_size == half, 20, "half staged")
            filler = fill(data_dir, leave=64 * 1024)  # room for state.json, not for the model
            setup.blobs.release.set()

            reason = _failure(setup, "2.0.0", EventKind.RETRYING)
            expected = (
                r"no space left on device while staging det 2\.0\.0: "
                rf"needs {a2.size} bytes, \d+ free( \(keeping \d+ free: disk_reserve_mb\))?"
            )
            assert re.fullmatch(expected, reason), reason
            # while the disk stays full, each retry is refused before any request
            wait_until(
                lambda: setup.watcher.kinds("2.0.0").count(EventKind.RETRYING) >= 2, 20, "retry"
            )
            reasons = [
                (e.reason or "").partition("; retrying ")[0]
                for e in setup.watcher.events
                if e.kind is EventKind.RETRYING
            ]
            assert all(re.fullmatch(expected, r) for r in reasons), reasons
            assert EventKind.FAILED not in setup.watcher.kinds("2.0.0")
            assert [r for p, r in setup.blobs.requests if model.sha256 in p] == [None]
            assert not (data_dir / "staging" / a2.bundle_digest).exists()  # no partial files
            _assert_nothing_installed(agent, a2)
            assert [m.version for m in agent.active] == ["1.0.0"]
            assert agent.status == DeviceStatus.ACTIVE
            assert agent.infer("det", X)["y"].shape == (1, 3)  # the previous model serves

            filler.unlink()  # space is freed: the next retry installs v2
            wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("2.0.0"), 30, "v2")
            assert [m.version for m in agent.active] == ["2.0.0"]
        finally:
            agent.stop()
