"""``--input-shape/--input-range/--input-value`` and ``--topk-agreement``: input hints and
the guard's top-k check signed into the bundle, and ``edgectl push``'s warning when a
model with dynamic dimensions has neither a bootstrap input nor hints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgectl.cli import main
from edgectl.push import beyond_batch
from model_store import BundleSelection, InputHint, TensorSpec, load_metadata, write_keypair
from tests.support.awkward_models import sample_rate_model
from tests.support.onnx_models import affine_model, two_input_model
from tests.support.ports import free_port


def _build(tmp_path: Path, model: Path, *flags: str) -> int:
    out = tmp_path / "bundle"
    argv = ["bundle", "build", str(model), "--name", "vad", "--version", "1", "--out", str(out)]
    return main([*argv, *flags])


def test_build_writes_the_hints_and_topk(tmp_path: Path) -> None:
    model = sample_rate_model(tmp_path / "src" / "vad.onnx")
    flags = ["--input-shape", "x=1x512", "--input-range", "x=-1:1", "--input-value", "sr=8000"]
    flags += ["--input-value", "sr=16000,22050", "--input-shape", "sr=", "--topk-agreement", "2"]
    assert _build(tmp_path, model, *flags) == 0
    meta = load_metadata(tmp_path / "bundle")
    assert meta.input_hints == {
        "x": InputHint(shape=[1, 512], range=(-1, 1)),
        "sr": InputHint(shape=[], values=[8000, 16000, 22050]),
    }
    assert meta.selection == BundleSelection(topk=2)


@pytest.mark.parametrize(
    ("flag", "error"),
    [
        (["--input-shape", "x"], "--input-shape wants NAME=VALUE"),
        (["--input-shape", "x=1x0"], "dimensions >= 1"),
        (["--input-range", "x=1"], "NAME=LOW:HIGH"),
        (["--input-range", "x=a:2"], "'a' in 'x=a:2' is not a number"),
        (["--input-value", "sr=nan"], "is not a number"),
    ],
)
def test_malformed_hint_flags_exit_2(
    tmp_path: Path, flag: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        _build(tmp_path, affine_model(tmp_path / "m.onnx"), *flag)
    assert caught.value.code == 2 and error in capsys.readouterr().err


def test_hints_that_do_not_fit_the_model_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = two_input_model(tmp_path / "m.onnx")
    code = _build(tmp_path, model, "--input-shape", "x=1x5", "--input-shape", "nope=3")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "input hint for" in err[0]
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(
    ("flags", "warned"),
    [
        ([], True),
        (["--input-value", "sr=16000"], False),
        (["--extra", "BOOT"], False),
    ],
)
def test_push_warns_when_a_dynamic_model_has_no_bootstrap_nor_hints(
    tmp_path: Path, flags: list[str], warned: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    model = sample_rate_model(tmp_path / "src" / "vad.onnx")
    boot = tmp_path / "bootstrap.npz"
    np.savez(boot, x=np.zeros((1, 512), np.float32), sr=np.array(16000, np.int64))
    key, _ = write_keypair(tmp_path / "keys", "release")
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["--url", url, "push", "model", str(model), "--name", "vad", "--version", "1"]
    argv += ["--key", str(key), *[str(boot) if f == "BOOT" else f for f in flags]]
    assert main(argv) != 0  # nobody listens there: nothing is uploaded
    err = capsys.readouterr().err
    assert "cannot reach the control plane" in err  # the build and signing went through
    warning = [line for line in err.splitlines() if "warning" in line]
    if warned:
        assert len(warning) == 1 and "dimensions beyond the batch (x)" in warning[0]
        assert "--input-shape/--input-range/--input-value" in warning[0]
    else:
        assert warning == []


def test_hint_flags_without_building_or_on_a_signed_bundle_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = write_keypair(tmp_path / "keys", "release")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    code = main(["bundle", "sign", str(bundle), "--key", str(key), "--input-value", "sr=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--input-*" in err[0]
    model = sample_rate_model(tmp_path / "src" / "vad.onnx")
    argv = ["bundle", "sign", str(model), "--key", str(key), "--name", "vad", "--version", "1"]
    assert main([*argv, "--out", str(tmp_path / "signed")]) == 0
    capsys.readouterr()
    push = ["--url", "http://127.0.0.1:9", "push", "model", str(tmp_path / "signed")]
    code = main([*push, "--name", "vad", "--version", "1", "--input-shape", "x=1x8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot change a signed bundle" in err[0]


def test_a_dynamic_batch_alone_is_no_guess() -> None:
    def spec(name: str, *shape: int | str) -> TensorSpec:
        return TensorSpec(name=name, dtype="float32", shape=list(shape))

    assert beyond_batch([spec("x", "batch", 4), spec("ids", "batch")]) == []
    assert beyond_batch([spec("x", "?", 4), spec("ids", "?")]) == []  # an IR: no names
    assert beyond_batch([spec("x", "N", 3, "h", "w")]) == ["x"]
    assert beyond_batch([spec("audio", "?"), spec("sr")]) == ["audio"]  # a sequence
