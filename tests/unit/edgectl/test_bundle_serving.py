"""``edgectl bundle build|sign --priority/--concurrency/--threads/--memory``: how the model
shares a device, signed with the bundle (``edgefleet.json`` ``serving``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgectl.cli import main
from model_store import BundleServing, load_metadata, write_keypair
from protocol import Priority
from tests.support.onnx_models import affine_model


def test_build_writes_the_serving_settings(tmp_path: Path) -> None:
    model = affine_model(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    argv = ["bundle", "build", str(model), "--name", "det", "--version", "1", "--out", str(out)]
    flags = ["--priority", "high", "--concurrency", "3", "--threads", "2", "--memory", "200MiB"]
    assert main([*argv, *flags]) == 0
    assert load_metadata(out).serving == BundleServing(
        priority=Priority.HIGH, concurrency=3, threads=2, memory_bytes=200 * 2**20
    )


def test_without_flags_there_is_no_serving(tmp_path: Path) -> None:
    model = affine_model(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    argv = ["bundle", "build", str(model), "--name", "det", "--version", "1", "--out", str(out)]
    assert main(argv) == 0
    assert load_metadata(out).serving is None


def test_serving_flags_without_building_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = write_keypair(tmp_path / "keys", "release")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    code = main(["bundle", "sign", str(bundle), "--key", str(key), "--priority", "low"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--priority" in err[0]


def test_a_bad_size_is_refused(tmp_path: Path) -> None:
    model = affine_model(tmp_path / "src" / "model.onnx")
    argv = ["bundle", "build", str(model), "--name", "d", "--version", "1", "--out", "x"]
    with pytest.raises(SystemExit):
        main([*argv, "--memory", "lots"])
