"""Pipeline versions on the control plane (issue 14, point 5): registered like any signed
version (the spec checked at upload), and a rollout of one refused (409, one line) while a
step's model version is not registered; ``edgectl push model NAME.pipeline.json`` builds,
signs and uploads one and reports that refusal in one line.

The app served by a real uvicorn on SQLite and PostgreSQL, real signed bundles, the real
artifact store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main as edgectl
from model_store import (
    SIGNATURE_FILENAME,
    build_bundle,
    bundle_files,
    load_private_key,
    sha256_file,
    sign_bundle,
)
from protocol import FileRef
from tests.support.controlplane import (
    ADMIN_TOKEN,
    SignedBundle,
    register_version,
    upload_bundle,
)
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
    "steps": [
        {"name": "det", "model": "det", "version": "1.0.0", "inputs": {"x": "input/x"}},
        {"name": "cls", "model": "cls", "version": "9.0", "inputs": {"y": "det/y"}},
    ],
    "outputs": [{"name": "label", "dtype": "int64", "shape": ["batch"], "from": "cls/label"}],
}


def _signed(
    plane: Plane, tmp: Path, version: str, spec: dict[str, Any] | None = None
) -> SignedBundle:
    source = tmp / f"src-{version}" / "ocr.pipeline.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(SPEC))
    directory = tmp / f"ocr-{version}"
    build_bundle(source, directory, name="ocr", version=version)
    if spec is not None:  # what a hand-made bundle could hold: signed, but bad
        (directory / "ocr.pipeline.json").write_text(json.dumps(spec))
    sig = sign_bundle(directory, load_private_key(plane.kit.release_key))
    files = [FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(directory)]
    signature = FileRef(path=SIGNATURE_FILENAME, sha256=sha256_file(sig), size=sig.stat().st_size)
    return SignedBundle("ocr", version, directory, files, signature)


def test_a_pipeline_registers_and_rolls_out_only_once_its_steps_are_registered(
    plane: Plane, tmp_path: Path
) -> None:
    created = upload_bundle(plane.http, _signed(plane, tmp_path, "1.0"))
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["framework"] == "pipeline"
    plane.report("d00")

    refused = plane.http.post(
        "/api/v1/rollouts", json={"model": "ocr", "version": "1.0", "fleet": "f"}
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        "pipeline ocr 1.0: step cls needs model cls 9.0, which is not registered; push it first"
    )

    register_version(plane.engine, "cls", "9.0", digest="12" * 32)
    started = plane.post("/rollouts", {"model": "ocr", "version": "1.0", "fleet": "f"}, 201)
    assert started["version"] == "1.0"


def test_a_signed_pipeline_with_a_bad_spec_is_refused_at_upload(
    plane: Plane, tmp_path: Path
) -> None:
    forward = json.loads(json.dumps(SPEC))
    forward["steps"][0]["inputs"] = {"x": "cls/y"}
    refused = upload_bundle(plane.http, _signed(plane, tmp_path, "2.0", forward))
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "step 'cls' does not run before it" in detail and "\n" not in detail


def test_edgectl_pushes_a_pipeline_spec_and_reports_the_refused_rollout(
    plane: Plane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "ocr.pipeline.json"
    spec.write_text(json.dumps(SPEC))
    plane.report("d00")
    argv = ["--url", str(plane.http.base_url), "--token", ADMIN_TOKEN, "push", "model", str(spec)]
    argv += ["--name", "ocr", "--version", "1.0", "--key", str(plane.kit.release_key)]
    code = edgectl([*argv, "--fleet", "f", "--detach"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "step cls needs model cls 9.0, which is not registered" in err[0]
    metadata = plane.get("/models/ocr/versions/1.0")["metadata"]
    assert (metadata["framework"], metadata["model_file"]) == ("pipeline", "ocr.pipeline.json")
