"""``edgectl bundle sign|build --extra``: ship a bootstrap input (or labels) in the bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.deployment.gate import BOOTSTRAP_FILENAME
from edgectl.cli import main
from model_store import load_metadata, load_public_key, verify_bundle, write_keypair
from tests.support.onnx_models import affine_model


def test_sign_with_a_bootstrap_input(tmp_path: Path) -> None:
    model = affine_model(tmp_path / "src" / "model.onnx")
    npz = tmp_path / BOOTSTRAP_FILENAME
    np.savez(npz, x=np.ones((2, 4), dtype=np.float32))
    key, pub = write_keypair(tmp_path / "keys", "release")
    out = tmp_path / "bundle"
    argv = ["bundle", "sign", str(model), "--name", "det", "--version", "1.0.0"]
    assert main([*argv, "--out", str(out), "--key", str(key), "--extra", str(npz)]) == 0
    assert load_metadata(out).extra_files == [BOOTSTRAP_FILENAME]
    manifest = verify_bundle(out, [load_public_key(pub)])
    assert BOOTSTRAP_FILENAME in {f.path for f in manifest.files}


def test_extra_without_building_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = write_keypair(tmp_path / "keys", "release")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    code = main(["bundle", "sign", str(bundle), "--key", str(key), "--extra", "x.npz"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--extra" in err[0]
