"""Interoperability with the upstream OpenSSF ``model_signing`` tool, both directions.

Our signatures must verify with ``model_signing verify key`` and signatures made by
``model_signing sign key`` must pass our ``verify_bundle``. The upstream CLI is run as a
real subprocess, with its default flags.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_store import (
    SIGNATURE_FILENAME,
    SignatureError,
    build_bundle,
    bundle_files,
    key_id,
    load_private_key,
    load_public_key,
    sign_bundle,
    verify_bundle,
    write_keypair,
)
from tests.support.onnx_models import affine_model

pytest.importorskip("model_signing")


def _upstream(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _upstream_verify(bundle: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    sig = bundle / SIGNATURE_FILENAME
    return _upstream("verify", "key", bundle, "--signature", sig, "--public_key", pub, cwd=bundle)


def _upstream_sign(bundle: Path, key: Path) -> None:
    sig = bundle / SIGNATURE_FILENAME
    done = _upstream("sign", "key", bundle, "--signature", sig, "--private_key", key, cwd=bundle)
    assert done.returncode == 0, done.stdout + done.stderr


def _statement(sig_path: Path) -> dict[str, Any]:
    envelope = json.loads(sig_path.read_text())["dsseEnvelope"]
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return data


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "keys")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle whose paths sort differently by string and by path component."""
    src = tmp_path / "src"
    affine_model(src / "model.onnx")
    (src / "extra").mkdir()
    (src / "extra" / "x.txt").write_text("x")
    (src / "extra-data.txt").write_text("y")
    (src / "labels.txt").write_text("cat\ndog\n")
    out = tmp_path / "bundle"
    build_bundle(src, out, name="det", version="1.4.0")
    return out


def test_our_signature_verifies_with_upstream(bundle: Path, keys: tuple[Path, Path]) -> None:
    key_path, pub_path = keys
    sign_bundle(bundle, load_private_key(key_path))
    done = _upstream_verify(bundle, pub_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification succeeded" in done.stdout


def test_upstream_rejects_our_bundle_once_tampered(
    bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The upstream check above is not vacuous: it fails on a changed file or wrong key."""
    key_path, pub_path = keys
    sign_bundle(bundle, load_private_key(key_path))
    (bundle / "labels.txt").write_text("cat\ndog\nbird\n")
    done = _upstream_verify(bundle, pub_path)
    assert done.returncode != 0 and "Verification failed" in done.stderr
    (bundle / "labels.txt").write_text("cat\ndog\n")
    _, other_pub = write_keypair(tmp_path / "other")
    assert _upstream_verify(bundle, other_pub).returncode != 0
    assert _upstream_verify(bundle, pub_path).returncode == 0


def test_upstream_signature_verifies_with_us(bundle: Path, keys: tuple[Path, Path]) -> None:
    key_path, pub_path = keys
    _upstream_sign(bundle, key_path)
    public_key = load_public_key(pub_path)
    manifest = verify_bundle(bundle, [public_key])
    assert manifest.subject_name == "bundle"  # upstream names the subject after the directory
    assert manifest.key_id == key_id(public_key)
    ours = bundle_files(bundle)
    assert [(e.path, e.sha256) for e in manifest.files] == [(f.path, f.sha256) for f in ours]
    assert [e.path for e in manifest.files][:3] == [
        "edgefleet.json",
        "extra/x.txt",
        "extra-data.txt",
    ]


def test_upstream_signature_of_a_plain_model_directory(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    key_path, pub_path = keys
    model_dir = tmp_path / "resnet"
    affine_model(model_dir / "model.onnx")
    (model_dir / "a").mkdir()
    (model_dir / "a" / "b.txt").write_text("b")
    (model_dir / "a-b.txt").write_text("ab")
    _upstream_sign(model_dir, key_path)
    manifest = verify_bundle(model_dir, [load_public_key(pub_path)])
    assert [e.path for e in manifest.files] == ["a/b.txt", "a-b.txt", "model.onnx"]
    assert manifest.subject_name == "resnet"


def test_upstream_signature_with_an_untrusted_key_is_refused(
    bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    key_path, _ = keys
    _upstream_sign(bundle, key_path)
    _, stranger = write_keypair(tmp_path / "stranger")
    with pytest.raises(SignatureError, match="untrusted key"):
        verify_bundle(bundle, [load_public_key(stranger)])


def test_same_statement_as_upstream(bundle: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    """Upstream and we sign the same statement for the same files (modulo key order)."""
    key_path, _ = keys
    _upstream_sign(bundle, key_path)
    theirs = _statement(bundle / SIGNATURE_FILENAME)
    sign_bundle(bundle, load_private_key(key_path))
    ours = _statement(bundle / SIGNATURE_FILENAME)
    # upstream writes ignore_paths from a frozenset (arbitrary order) and names the subject
    # after the directory; we name it after the model
    theirs["predicate"]["serialization"]["ignore_paths"].sort()
    theirs["subject"][0]["name"] = ours["subject"][0]["name"] = "x"
    assert ours == theirs
