"""Root, release and control-plane keys: ECDSA P-256 PEM files.

Private keys are PKCS8 PEM, public keys SubjectPublicKeyInfo PEM.

Upstream ``model_signing verify key`` accepts these (it rejects Ed25519). Key material is
never logged; only key ids (sha256 of the DER public key) are.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from model_store.errors import KeyFileError

logger = logging.getLogger(__name__)

MAX_KEY_FILE_BYTES = 64 * 1024
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an ECDSA {key.curve.name} key"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "an Ed448 key"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"an RSA-{key.key_size} key"
    return f"a {type(key).__name__.lstrip('_')}"


def is_p256(key: object) -> bool:
    """True for an ECDSA key on the P-256 (secp256r1) curve."""
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    )


def require_p256(key: object, what: str) -> None:
    """``KeyFileError`` naming the key's actual type unless it is ECDSA P-256."""
    if not is_p256(key):
        raise KeyFileError(f"{what} is {_describe(key)}, expected ECDSA P-256 (secp256r1)")


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex sha256 of the DER SubjectPublicKeyInfo: a stable, public name for the key."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


#: How many hex digits of a key id are shown where a key is named in a message.
SHORT_KEY_ID = 16


def short_key_id(kid: str) -> str:
    """The key id as messages show it: its first 16 hex digits (``keys create`` prints
    the whole id, which starts with them)."""
    return kid[:SHORT_KEY_ID]


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """Upstream ``model_signing``'s key hint: hex sha256 of the public key's PEM."""
    return hashlib.sha256(public_key_pem(public_key)).hexdigest()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(os.dup(fd), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        os.close(fd)


def write_keypair(out_dir: Path, name: str = "release") -> tuple[Path, Path]:
    """Create a P-256 key pair as ``out_dir/NAME.key`` (0600) and ``out_dir/NAME.pub``.

    The private key is unencrypted PKCS8 PEM. Existing files are never overwritten.
    """
    if _KEY_NAME.fullmatch(name) is None:
        raise KeyFileError(f"invalid key name {name!r}: use letters, digits, '.', '_', '-'")
    key_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    private_key = generate_private_key()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        if not out_dir.is_dir():
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            out_dir.mkdir(mode=0o700)
        _write_new(key_path, pem, 0o600)
        try:
            _write_new(pub_path, public_key_pem(private_key.public_key()), 0o644)
        except BaseException:
            key_path.unlink(missing_ok=True)
            raise
    except FileExistsError as exc:
        raise KeyFileError(f"{exc.filename} already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write key to {out_dir}: {exc.strerror or exc}") from exc
    logger.info("created key pair %s (key id %s)", key_path, key_id(private_key.public_key()))
    return key_path, pub_path


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise KeyFileError(f"key file {path} is a directory") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file {path} is too large to be a PEM key")
    if b"-----BEGIN " not in data:
        raise KeyFileError(f"key file {path} is not PEM")
    return data


def load_private_key(path: Path, *, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM ECDSA P-256 private key (``password`` for an encrypted one)."""
    data = _read_key_file(path)
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise KeyFileError(f"key file {path} holds a public key, not a private key")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        message = "is encrypted; a password is needed" if password is None else "is not encrypted"
        raise KeyFileError(f"key file {path} {message}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"key file {path} is not a readable PEM private key") from exc
    require_p256(key, f"key file {path}")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def public_key_from_pem(data: bytes, *, what: str) -> ec.EllipticCurvePublicKey:
    """Parse PEM (SubjectPublicKeyInfo) bytes as an ECDSA P-256 public key.

    ``what`` names the key in the one-line ``KeyFileError`` (e.g. "key file x.pub").
    """
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{what} is too large to be a PEM key")
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(f"{what} holds a private key; give the public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{what} is not a readable PEM public key") from exc
    require_p256(key, what)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Load a PEM (SubjectPublicKeyInfo) ECDSA P-256 public key."""
    data = _read_key_file(path)
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(f"key file {path} holds a private key; give the .pub file")
    return public_key_from_pem(data, what=f"key file {path}")


def load_trusted_keys(paths: Iterable[Path | str]) -> list[ec.EllipticCurvePublicKey]:
    """Public keys from PEM files and from the ``*.pub`` files of directories.

    Duplicates (same key id) are dropped. ``KeyFileError`` if a path is missing, a key is
    bad, or no key at all is found.
    """
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    searched: list[str] = []
    for raw in paths:
        path = Path(raw)
        searched.append(str(path))
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".pub" and p.is_file())
        elif path.exists():
            files = [path]
        else:
            raise KeyFileError(f"trusted key path not found: {path}")
        for file in files:
            key = load_public_key(file)
            keys.setdefault(key_id(key), key)
    if not keys:
        raise KeyFileError(f"no trusted public keys found in {', '.join(searched) or '(none)'}")
    logger.debug("trusting %d key(s): %s", len(keys), ", ".join(k[:16] for k in keys))
    return list(keys.values())
