"""Release key files: creation, loading, wrong types, trusted key sets."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from model_store import (
    KeyFileError,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    write_keypair,
)


def test_write_keypair_and_load(tmp_path: Path) -> None:
    key_path, pub_path = write_keypair(tmp_path / "keys")
    assert (key_path.name, pub_path.name) == ("release.key", "release.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pub_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    private = load_private_key(key_path)
    public = load_public_key(pub_path)
    assert isinstance(private.curve, ec.SECP256R1)
    assert key_id(private.public_key()) == key_id(public)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id(public) == hashlib.sha256(der).hexdigest()


def test_write_keypair_never_overwrites(tmp_path: Path) -> None:
    key_path, _ = write_keypair(tmp_path, "ops")
    before = key_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(tmp_path, "ops")
    assert key_path.read_bytes() == before
    (tmp_path / "lonely.pub").write_text("x")
    with pytest.raises(KeyFileError, match=r"lonely\.pub already exists"):
        write_keypair(tmp_path, "lonely")
    assert not (tmp_path / "lonely.key").exists()
    with pytest.raises(KeyFileError, match="invalid key name"):
        write_keypair(tmp_path, "../escape")


def _pem_private(key: Any) -> bytes:
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data


def _pem_public(key: Any) -> bytes:
    data: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (ed25519.Ed25519PrivateKey.generate, "is an Ed25519 key, expected ECDSA P-256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ECDSA secp384r1 key, expected"),
        (lambda: rsa.generate_private_key(65537, 2048), "is an RSA-2048 key"),
    ],
    ids=["ed25519", "p384", "rsa"],
)
def test_wrong_key_types_say_what_they_are(
    tmp_path: Path, make: Callable[[], Any], message: str
) -> None:
    key = make()
    (tmp_path / "k.key").write_bytes(_pem_private(key))
    (tmp_path / "k.pub").write_bytes(_pem_public(key))
    with pytest.raises(KeyFileError, match=message):
        load_private_key(tmp_path / "k.key")
    with pytest.raises(KeyFileError, match=message):
        load_public_key(tmp_path / "k.pub")
    with pytest.raises(KeyFileError, match=message):
        load_trusted_keys([tmp_path])


def test_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(KeyFileError, match="is a directory"):
        load_public_key(tmp_path)
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(KeyFileError, match="not PEM"):
        load_public_key(tmp_path / "junk.pub")
    (tmp_path / "broken.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(KeyFileError, match="not a readable PEM public key"):
        load_public_key(tmp_path / "broken.pub")
    key_path, pub_path = write_keypair(tmp_path / "k")
    with pytest.raises(KeyFileError, match="holds a public key"):
        load_private_key(pub_path)
    with pytest.raises(KeyFileError, match="holds a private key"):
        load_public_key(key_path)
    encrypted = generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (tmp_path / "enc.key").write_bytes(encrypted)
    with pytest.raises(KeyFileError, match="encrypted"):
        load_private_key(tmp_path / "enc.key")
    assert isinstance(
        load_private_key(tmp_path / "enc.key", password=b"secret"), ec.EllipticCurvePrivateKey
    )


def test_load_trusted_keys_from_files_and_directories(tmp_path: Path) -> None:
    _, pub_a = write_keypair(tmp_path / "dir", "a")
    _, pub_b = write_keypair(tmp_path / "dir", "b")
    _, pub_c = write_keypair(tmp_path / "single", "c")
    (tmp_path / "dir" / "notes.txt").write_text("not a key")
    keys = load_trusted_keys([tmp_path / "dir", str(pub_c), pub_a])  # pub_a twice: deduplicated
    assert [key_id(k) for k in keys] == [key_id(load_public_key(p)) for p in (pub_a, pub_b, pub_c)]
    (tmp_path / "none").mkdir()
    with pytest.raises(KeyFileError, match="no trusted public keys"):
        load_trusted_keys([tmp_path / "none"])
    with pytest.raises(KeyFileError, match="no trusted public keys"):
        load_trusted_keys([])
    with pytest.raises(KeyFileError, match="not found"):
        load_trusted_keys([tmp_path / "nope.pub"])
