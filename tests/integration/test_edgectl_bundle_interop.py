"""OpenSSF model-signing interop, both directions, with the real upstream ``model_signing``.

edgectl-signed bundles verify with ``model_signing verify key``; bundles signed by
``model_signing sign key`` verify with ``edgectl bundle verify`` against the trust
document (and stop verifying once their key is revoked), and ``edgectl push`` uploads
them as they are, without re-signing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from model_store import key_id, load_public_key, write_keypair
from tests.support.onnx_models import affine_model
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


def _upstream(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _upstream_verify(bundle: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    return _upstream(
        "verify", "key", bundle, "--signature", bundle / "model.sig", "--public_key", pub
    )


def _upstream_sign(bundle: Path, key: Path) -> None:
    result = _upstream(
        "sign", "key", bundle, "--signature", bundle / "model.sig", "--private_key", key
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _edgectl(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return affine_model(tmp_path / "src" / "model.onnx")


def test_edgectl_signed_bundle_verifies_with_upstream(
    trust_kit: TrustKit, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    code, out, err = _edgectl(
        capsys, "bundle", "sign", model, "--key", trust_kit.release_key,
        "--name", "det", "--version", "1.0", "--out", bundle,
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"signed {bundle}: 2 files")
    result = _upstream_verify(bundle, trust_kit.release_pub)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _upstream_verify(bundle, trust_kit.cp_pub).returncode != 0

    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-1] ^= 0x01
    (bundle / "model.onnx").write_bytes(bytes(data))
    assert _upstream_verify(bundle, trust_kit.release_pub).returncode != 0
    code, _, err = _edgectl(capsys, "bundle", "verify", bundle, "--trust", trust_kit.trust_file)
    assert code == 1 and err.startswith("edgectl: error: invalid: ") and "\n" not in err.strip()


def test_built_bundle_signed_in_place_verifies_with_upstream(
    trust_kit: TrustKit, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    with pytest.raises(SystemExit):  # argparse: --out is required
        main(["bundle", "build", str(model), "--name", "det", "--version", "1"])
    code, out, _ = _edgectl(
        capsys, "bundle", "build", model, "--name", "det", "--version", "1", "--out", bundle
    )
    assert code == 0 and "model_signing sign key" in out
    assert not (bundle / "model.sig").exists()
    assert _edgectl(capsys, "bundle", "sign", bundle, "--key", trust_kit.release_key)[0] == 0
    assert _upstream_verify(bundle, trust_kit.release_pub).returncode == 0
    copy = tmp_path / "copy"
    code, _, err = _edgectl(
        capsys, "bundle", "sign", bundle, "--key", trust_kit.release_key, "--out", copy
    )
    assert code == 0, err
    assert _upstream_verify(copy, trust_kit.release_pub).returncode == 0


def test_upstream_signed_bundle_verifies_with_edgectl_until_revoked(
    trust_kit: TrustKit, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    assert _edgectl(
        capsys, "bundle", "build", model, "--name", "det", "--version", "1", "--out", bundle
    )[0] == 0  # fmt: skip
    _upstream_sign(bundle, trust_kit.release_key)
    release_id = key_id(load_public_key(trust_kit.release_pub))

    code, out, err = _edgectl(capsys, "bundle", "verify", bundle, "--trust", trust_kit.trust_file)
    assert code == 0, err
    assert out.startswith("valid: ") and release_id[:16] in out and "its own root role" in out
    code, out, _ = _edgectl(
        capsys, "bundle", "verify", bundle, "--trust", trust_kit.trust_file,
        "--root", trust_kit.root_pub,
    )  # fmt: skip
    assert code == 0 and "pinned root key" in out

    code, _, err = _edgectl(
        capsys, "bundle", "verify", bundle, "--trust", trust_kit.trust_file,
        "--root", trust_kit.release_pub,
    )  # fmt: skip
    assert code == 1 and "not signed by a pinned root key" in err

    revoked = tmp_path / "trust-v2.json"
    code, _, err = _edgectl(
        capsys, "trust", "update", trust_kit.trust_file, "--root-key", trust_kit.root_key,
        "--revoke", release_id, "--out", revoked,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = _edgectl(capsys, "bundle", "verify", bundle, "--trust", revoked)
    assert code == 1 and out == ""
    assert err.startswith("edgectl: error: invalid: ") and "no release key" in err


def test_upstream_bundle_signed_by_an_uncertified_key_is_invalid(
    trust_kit: TrustKit, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger_key, _ = write_keypair(tmp_path / "stranger", "release")
    bundle = tmp_path / "bundle"
    assert _edgectl(
        capsys, "bundle", "build", model, "--name", "det", "--version", "1", "--out", bundle
    )[0] == 0  # fmt: skip
    _upstream_sign(bundle, stranger_key)
    code, out, err = _edgectl(capsys, "bundle", "verify", bundle, "--trust", trust_kit.trust_file)
    assert (code, out) == (1, "")
    assert err.strip().startswith("edgectl: error: invalid: signed by an untrusted key")
    assert "\n" not in err.strip()


def test_bundle_verify_bad_input_is_exit_2(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = trust_kit.trust_file
    code, _, err = _edgectl(capsys, "bundle", "verify", tmp_path / "nope", "--trust", trust)
    assert code == 2 and "not found" in err
    code, _, err = _edgectl(capsys, "bundle", "verify", tmp_path, "--trust", tmp_path / "none.json")
    assert code == 2 and "trust document not found" in err


class _FakeControlPlane(BaseHTTPRequestHandler):
    """Just enough of /api/v1 for ``edgectl push``: records what was uploaded."""

    blobs: dict[str, bytes] = {}
    versions: list[dict[str, Any]] = []

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self) -> None:
        self._answer(200, {"status": "ok"})

    def do_PUT(self) -> None:
        self.blobs[self.path.rsplit("/", 1)[-1]] = self._body()
        self._answer(201, {})

    def do_POST(self) -> None:
        body = json.loads(self._body())
        self.versions.append(body)
        self._answer(201, {"bundle_digest": "0" * 64, **body})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_cp() -> Iterator[str]:
    _FakeControlPlane.blobs, _FakeControlPlane.versions = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeControlPlane)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_push_uploads_an_upstream_signed_bundle_as_is(
    trust_kit: TrustKit,
    model: Path,
    tmp_path: Path,
    fake_cp: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / "bundle"
    assert _edgectl(
        capsys, "bundle", "build", model, "--name", "det", "--version", "1.0", "--out", bundle
    )[0] == 0  # fmt: skip
    _upstream_sign(bundle, trust_kit.release_key)
    signature = (bundle / "model.sig").read_bytes()
    push = ["--url", fake_cp, "push", "model", bundle, "--key", tmp_path / "no-such.key"]

    code, _, err = _edgectl(capsys, *push, "--name", "det", "--version", "2.0")
    assert code == 2 and "not det 2.0" in err
    stranger_trust = tmp_path / "other"
    code, _, err = _edgectl(
        capsys, *push, "--name", "det", "--version", "1.0", "--trust", stranger_trust
    )
    assert code == 2 and "trust document not found" in err
    assert _FakeControlPlane.blobs == {}

    code, out, err = _edgectl(
        capsys, *push, "--name", "det", "--version", "1.0", "--trust", trust_kit.trust_file
    )
    assert code == 0, err
    assert "uploaded as signed" in out
    assert signature in _FakeControlPlane.blobs.values()
    assert (bundle / "model.sig").read_bytes() == signature
    assert _FakeControlPlane.versions[0]["signature"]["size"] == len(signature)


def test_push_refuses_a_signed_directory_without_metadata(
    trust_kit: TrustKit, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = model.parent
    _upstream_sign(plain, trust_kit.release_key)
    code, _, err = _edgectl(
        capsys, "--url", "http://127.0.0.1:9", "push", "model", plain,
        "--name", "det", "--version", "1.0",
    )  # fmt: skip
    assert code == 2 and "has no edgefleet.json" in err
