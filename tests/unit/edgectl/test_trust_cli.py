"""``edgectl keys create`` and ``edgectl trust init|update|show|publish``."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgectl.cli import main
from model_store import (
    Role,
    TrustDocument,
    build_trust_document,
    encode_envelope,
    key_id,
    load_initial_trust,
    load_private_key,
    load_public_key,
    verify_trust_update,
)
from tests.support.ports import free_port
from tests.support.trust import TrustKit

NOW = datetime.now(UTC)


def _ok(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _fails(capsys: pytest.CaptureFixture[str], code: int, *argv: object) -> str:
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgectl: error: "), err
    assert "\n" not in err and "Traceback" not in err
    return err


def _kid(pub: Path) -> str:
    return key_id(load_public_key(pub))


def _v1(kit: TrustKit) -> TrustDocument:
    return load_initial_trust(kit.trust_file.read_bytes(), [load_public_key(kit.root_pub)], now=NOW)


def test_keys_create_defaults_to_a_release_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "keys", "create", "--out", tmp_path / "k")
    assert (tmp_path / "k" / "release.key").is_file() and (tmp_path / "k" / "release.pub").is_file()
    assert f"release key id: {_kid(tmp_path / 'k' / 'release.pub')}" in out


def test_keys_create_refuses_a_file_name_for_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out k.key`` would make a directory named k.key: refused, naming what to type."""
    err = _fails(capsys, 2, "keys", "create", "--out", tmp_path / "k.key")
    assert f"use --out {tmp_path} --name k" in err
    assert not (tmp_path / "k.key").exists()


@pytest.mark.parametrize(
    ("role", "name", "stem"), [("root", None, "root"), ("control-plane", "cp1", "cp1")]
)
def test_keys_create_with_a_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], role: str, name: str | None, stem: str
) -> None:
    argv = [
        "keys",
        "create",
        "--out",
        tmp_path,
        "--role",
        role,
        *(["--name", name] if name else []),
    ]
    out = _ok(capsys, *argv)
    assert (tmp_path / f"{stem}.key").stat().st_mode & 0o777 == 0o600
    assert f"{role} key id: " in out
    assert "already exists" in _fails(capsys, 2, *argv)


def test_init_writes_version_1(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = trust_kit
    out_file = tmp_path / "t.json"
    out = _ok(
        capsys, "trust", "init", "--root-key", k.root_key, "--release", k.release_pub,
        "--control-plane", k.cp_pub, "--expires-days", "30", "--out", out_file,
    )  # fmt: skip
    assert "version 1" in out and _kid(k.release_pub) in out
    doc = load_initial_trust(out_file.read_bytes(), [load_public_key(k.root_pub)], now=NOW)
    assert doc.version == 1 and (doc.expires - NOW).days in (29, 30)
    assert set(doc.keys_for(Role.RELEASE)) == {_kid(k.release_pub)}
    assert set(doc.keys_for(Role.CONTROL_PLANE)) == {_kid(k.cp_pub)}


def test_init_bad_inputs_are_one_line(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = trust_kit
    base = ["trust", "init", "--root-key", k.root_key, "--control-plane", k.cp_pub]
    out = ["--out", tmp_path / "t.json"]
    assert "not found" in _fails(capsys, 2, *base, "--release", tmp_path / "no.pub", *out)
    assert "private key" in _fails(capsys, 2, *base, "--release", k.release_key, *out)
    assert "two roles" in _fails(capsys, 2, *base, "--release", k.cp_pub, *out)
    assert "expires-days" in _fails(
        capsys, 2, *base, "--release", k.release_pub, "--expires-days", "0", *out
    )
    assert "already exists" in _fails(
        capsys, 2, *base, "--release", k.release_pub, "--out", k.trust_file
    )
    assert not (tmp_path / "t.json").exists()


def test_update_adds_and_revokes_release_keys(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = trust_kit
    _ok(capsys, "keys", "create", "--out", tmp_path, "--name", "r2")
    v2_file, v3_file = tmp_path / "v2.json", tmp_path / "v3.json"
    _ok(
        capsys, "trust", "update", k.trust_file, "--root-key", k.root_key,
        "--add-release", tmp_path / "r2.pub", "--revoke", k.release_pub, "--out", v2_file,
    )  # fmt: skip
    v2 = verify_trust_update(_v1(k), v2_file.read_bytes(), now=NOW)
    assert v2.version == 2 and v2.revoked == {_kid(k.release_pub)}
    assert set(v2.keys_for(Role.RELEASE)) == {_kid(tmp_path / "r2.pub")}
    _ok(
        capsys, "trust", "update", v2_file, "--root-key", k.root_key,
        "--remove-release", _kid(tmp_path / "r2.pub"), "--out", v3_file,
    )  # fmt: skip
    v3 = verify_trust_update(v2, v3_file.read_bytes(), now=NOW)
    assert v3.keys_for(Role.RELEASE) == {} and v3.revoked == v2.revoked


def test_update_rotates_the_root(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = trust_kit
    _ok(capsys, "keys", "create", "--out", tmp_path, "--role", "root", "--name", "root2")
    v2_file = tmp_path / "v2.json"
    out = _ok(
        capsys, "trust", "update", k.trust_file, "--root-key", k.root_key,
        "--new-root-key", tmp_path / "root2.key", "--out", v2_file,
    )  # fmt: skip
    assert "root rotated" in out
    v2 = verify_trust_update(_v1(k), v2_file.read_bytes(), now=NOW)
    assert set(v2.keys_for(Role.ROOT)) == {_kid(tmp_path / "root2.pub")}
    assert len(v2.envelope.signatures) == 2
    err = _fails(
        capsys, 2, "trust", "update", v2_file, "--root-key", k.root_key, "--out", tmp_path / "x"
    )
    assert "not a root key of version 2" in err
    _ok(
        capsys,
        "trust",
        "update",
        v2_file,
        "--root-key",
        tmp_path / "root2.key",
        "--out",
        tmp_path / "v3",
    )


def test_update_bad_inputs_are_one_line(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = trust_kit
    base = ["trust", "update", k.trust_file, "--root-key", k.root_key]
    out = ["--out", tmp_path / "v2.json"]
    assert "not a root key" in _fails(
        capsys, 2, "trust", "update", k.trust_file, "--root-key", k.release_key, *out
    )
    assert "neither a key id" in _fails(capsys, 2, *base, "--revoke", "nope", *out)
    assert "does not hold the release role" in _fails(
        capsys, 2, *base, "--remove-release", k.cp_pub, *out
    )
    assert "root role is empty" in _fails(capsys, 2, *base, "--revoke", k.root_pub, *out)
    assert "not found" in _fails(
        capsys, 2, "trust", "update", tmp_path / "nope.json", "--root-key", k.root_key, *out
    )
    assert not (tmp_path / "v2.json").exists()


def test_show_prints_roles_and_signer(
    trust_kit: TrustKit, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "trust", "show", trust_kit.trust_file)
    assert "trust document version 1" in out and _kid(trust_kit.cp_pub) in out
    assert f"signed by:     {_kid(trust_kit.root_pub)}" in out
    data = json.loads(_ok(capsys, "trust", "show", trust_kit.trust_file, "--json"))
    assert data["version"] == 1 and data["expired"] is False and data["revoked"] == []
    assert data["roles"]["release"] == [_kid(trust_kit.release_pub)]
    assert data["signed_by"] == [_kid(trust_kit.root_pub)]


def test_show_refuses_tampered_or_garbage_documents(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _v1(trust_kit)
    payload = json.loads(base64.b64decode(doc.envelope.payload))
    payload["version"] = 7
    forged = doc.envelope.model_copy(
        update={"payload": base64.b64encode(json.dumps(payload).encode()).decode()}
    )
    bad = tmp_path / "forged.json"
    bad.write_bytes(encode_envelope(forged))
    assert "not signed by its own root role" in _fails(capsys, 1, "trust", "show", bad)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert "malformed envelope" in _fails(capsys, 2, "trust", "show", garbage)


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        answer = b'{"version": 1}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_publish_posts_the_envelope_bytes(
    trust_kit: TrustKit, recorder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "--url", recorder, "trust", "publish", trust_kit.trust_file)
    assert "published trust document version 1" in out
    assert _Recorder.received == [
        ("/api/v1/trust", "application/json", trust_kit.trust_file.read_bytes())
    ]


def test_publish_to_an_unreachable_control_plane(
    trust_kit: TrustKit, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = _fails(capsys, 3, "--url", url, "trust", "publish", trust_kit.trust_file)
    assert "cannot reach the control plane" in err


def test_update_renews_an_expired_document(
    trust_kit: TrustKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = trust_kit
    root = load_private_key(k.root_key)
    expired = build_trust_document(
        version=4,
        expires=NOW - timedelta(days=1),
        roots=[root.public_key()],
        releases=[load_public_key(k.release_pub)],
        control_planes=[],
        signers=[root],
    )
    old = tmp_path / "v4.json"
    old.write_bytes(expired.raw())
    assert "EXPIRED" in _ok(capsys, "trust", "show", old)
    _ok(capsys, "trust", "update", old, "--root-key", k.root_key, "--out", tmp_path / "v5.json")
    v5 = verify_trust_update(expired, (tmp_path / "v5.json").read_bytes(), now=NOW)
    assert v5.version == 5 and v5.expires > NOW + timedelta(days=364)
