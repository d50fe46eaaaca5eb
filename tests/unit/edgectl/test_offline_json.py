"""``--json`` on the offline commands: ``trust init|update`` and ``bundle
build|sign|verify`` each print one JSON document (and the human lines count right)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from model_store import key_id, load_public_key
from tests.support.onnx_models import affine_model
from tests.support.trust import TrustKit, make_trust_kit


def _json(capsys: pytest.CaptureFixture[str], *argv: object) -> Any:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture
def kit(tmp_path: Path) -> TrustKit:
    return make_trust_kit(tmp_path / "keys")


def test_trust_init_and_update_json(
    kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = tmp_path / "v1.json"
    init = ["trust", "init", "--root-key", kit.root_key, "--release", kit.release_pub]
    written = _json(capsys, *init, "--control-plane", kit.cp_pub, "--out", v1, "--json")
    assert written["file"] == str(v1) and written["version"] == 1
    assert written["roles"]["release"] == [key_id(load_public_key(kit.release_pub))]
    assert written["root_rotated"] is False and written["expired"] is False
    update = ["trust", "update", v1, "--root-key", kit.root_key, "--revoke", kit.release_pub]
    second = _json(capsys, *update, "--out", tmp_path / "v2.json", "--json")
    assert second["version"] == 2 and second["roles"]["release"] == []
    assert second["revoked"] == [key_id(load_public_key(kit.release_pub))]


def test_bundle_build_sign_verify_json(
    kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = affine_model(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    build = ["bundle", "build", model, "--name", "det", "--version", "1.0.0", "--out", out]
    built = _json(capsys, *build, "--json")
    assert built == {"bundle": str(out), "name": "det", "version": "1.0.0", "signed": False}
    signed = _json(capsys, "bundle", "sign", out, "--key", kit.release_key, "--json")
    assert signed["bundle"] == str(out) and "model.onnx" in signed["files"]
    assert signed["key_id"] == key_id(load_public_key(kit.release_pub))
    verified = _json(capsys, "bundle", "verify", out, "--trust", kit.trust_file, "--json")
    assert verified["valid"] is True and verified["name"] == "det"
    assert verified["bundle_digest"] == signed["bundle_digest"]
    assert verified["files"] == signed["files"] and verified["trust_version"] == 1

    assert main(["bundle", "verify", str(out), "--trust", str(kit.trust_file)]) == 0
    line = capsys.readouterr().out
    files = len(signed["files"])
    assert f": {files} files, bundle digest" in line and "file(s)" not in line
