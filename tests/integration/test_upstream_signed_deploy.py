"""A directory signed by the upstream ``model_signing sign key`` (with a release key the
trust document certifies) goes through ``edgectl push`` unchanged, is accepted by the
control plane, and is verified, installed and served by real agents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from agent.simulator import SimulatedFleet
from agent.simulator.enroll import api_enrollment
from edgectl.cli import main as edgectl
from tests.support.controlplane import reported_devices, run_controlplane
from tests.support.deploy import assert_close_to_reference, served_backend
from tests.support.mosquitto import Broker
from tests.support.onnx_models import two_input_model
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


def test_upstream_signed_bundle_is_deployed_and_served(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit
) -> None:
    model = two_input_model(tmp_path / "src" / "det.onnx", weight=2.0)
    bundle = tmp_path / "bundle"
    assert (
        edgectl(
            [
                "bundle",
                "build",
                str(model),
                "--name",
                "det",
                "--version",
                "1.0.0",
                "--out",
                str(bundle),
            ]
        )
        == 0
    )
    signed = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "sign",
            "key",
            str(bundle),
            "--signature",
            str(bundle / "model.sig"),
            "--private_key",
            str(trust_kit.release_key),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert signed.returncode == 0, signed.stdout + signed.stderr
    upstream_signature = (bundle / "model.sig").read_bytes()

    with run_controlplane(tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit) as cp:
        fleet = SimulatedFleet(
            count=2,
            fleet="lab",
            broker_url=mosquitto.url,
            control_plane_url=cp.url,
            data_dir=tmp_path / "devices",
            root_keys=[trust_kit.root_pub],
            enrollment=api_enrollment(cp.url, cp.token, "lab"),
        )
        with fleet:
            wait_until(
                lambda: len(reported_devices(cp)) == 2,
                30,
                "devices to register",
            )
            assert (
                edgectl(
                    [
                        "--url",
                        cp.url,
                        "--token",
                        cp.token,
                        "push",
                        "model",
                        str(bundle),
                        "--name",
                        "det",
                        "--version",
                        "1.0.0",
                        "--fleet",
                        "lab",
                        "--no-gate",
                        "--timeout",
                        "2m",
                    ]
                )
                == 0
            )
            x = np.arange(8, dtype=np.float32).reshape(2, 4)
            ids = np.array([5, -7], dtype=np.int64)
            y, n = ort.InferenceSession(str(model)).run(None, {"x": x, "ids": ids})
            for agent in fleet.agents:
                assert [m.version for m in agent.active] == ["1.0.0"]
                installed = agent.config.data_dir / "models" / agent.active[0].bundle_digest
                assert (installed / "model.sig").read_bytes() == upstream_signature
                out = agent.infer("det", {"x": x, "ids": ids})
                # exact from fp32; the simulated xeon-amx host may measure bf16 fastest
                assert_close_to_reference(out, {"y": y, "n": n}, served_backend(agent, "det"))
