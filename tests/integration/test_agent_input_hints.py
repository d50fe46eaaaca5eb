"""Input hints end to end (issue 18): a real agent on a real broker deploys a voice-like
model whose int64 scalar input must be a real rate. Without hints its health gate fails on
generated inputs and the failure says how to supply better ones; the same model signed
with ``--input-value``'s hint is measured on every backend and serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import build_bundle, load_private_key, sign_bundle
from protocol import DeploymentEvent, EventKind
from tests.support.awkward_models import sample_rate_model
from tests.support.deploy import Setup, oip_infer, outputs_of
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


def _bundle(setup: Setup, version: str, hints: dict[str, Any] | None) -> Path:
    src = sample_rate_model(setup.tmp / "src" / version / "vad.onnx", rate_name="rate_code")
    out = setup.tmp / "bundles" / version
    build_bundle(src, out, name="vad", version=version, input_hints=hints)
    sign_bundle(out, load_private_key(setup.key_path))
    return out


def _outcome(setup: Setup, version: str) -> DeploymentEvent:
    final = {EventKind.ACTIVATED, EventKind.FAILED}

    def found() -> DeploymentEvent | None:
        with setup.watcher.lock:
            return next(
                (e for e in setup.watcher.events if e.model_version == version and e.kind in final),
                None,
            )

    wait_until(lambda: found() is not None, 60, f"vad {version} activated or failed")
    event = found()
    assert event is not None
    return event


def test_hints_signed_into_the_bundle_make_a_model_deployable(setup: Setup) -> None:
    guessed = _bundle(setup, "1.0.0", None)
    hinted = _bundle(setup, "2.0.0", {"rate_code": {"values": [16000]}, "x": {"shape": [1, 64]}})
    with setup.agent() as agent:
        setup.watcher.desire(1, setup.assignment(guessed, 1))
        failed = _outcome(setup, "1.0.0")
        assert failed.kind is EventKind.FAILED and failed.reason is not None
        assert "not finite" in failed.reason and "rate_code int64[]" in failed.reason
        assert "--input-value" in failed.reason

        setup.watcher.desire(2, setup.assignment(hinted, 2))
        assert _outcome(setup, "2.0.0").kind is EventKind.ACTIVATED

        def active() -> Any:
            state = setup.watcher.last_state()
            return next((m for m in state.active if m.version == "2.0.0"), None) if state else None

        wait_until(lambda: active() is not None, 10, "vad 2.0.0 reported active")
        served = active()
        assert served.selection is not None and len(served.selection.candidates) == 2
        for figures in served.selection.candidates:  # both backends ran the hinted inputs
            assert figures.excluded is None and figures.rel_error is not None
        x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)
        inputs = {"x": x, "rate_code": np.array(8000, np.int64)}
        assert np.allclose(outputs_of(oip_infer(agent, "vad", inputs))["y"], x)
