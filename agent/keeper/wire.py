"""The keeper child's requests and answers: one JSON object per line each way.

A request is ``{"op": NAME, "args": {...}}``; an answer ``{"result": ...}`` or
``{"error": CLASS, "message": TEXT}``, both with the keeper's ``trust_version`` and
``refused`` (trust documents refused by this child). Bytes travel as base64, times as
ISO-8601, paths as strings. Errors travel by class name, among ``ERRORS`` only (anything
else arrives as ``AgentError``), with their one-line message.

What travels may be secret (an enrollment token, the report key): it goes over the
child's own pipes and is never logged.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.errors import (
    AgentConfigError,
    AgentError,
    CommandRefused,
    IdentityError,
    TrustFetchError,
    TrustStoreError,
    VerificationError,
)
from agent.identity.model import Identity
from model_store.errors import ModelStoreError
from model_store.report_key import report_key
from model_store.statement import ManifestEntry, SignedManifest

#: errors that keep their class across the pipe (most specific first)
ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        AgentConfigError,
        IdentityError,
        CommandRefused,
        TrustFetchError,
        TrustStoreError,
        VerificationError,
        ModelStoreError,
        AgentError,
    )
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object) -> bytes:
    return base64.b64decode(str(text), validate=True)


def line(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def error_name(exc: BaseException) -> str:
    """The name ``exc`` travels under: its class's, or the nearest one in ``ERRORS``."""
    for cls in type(exc).__mro__:
        if ERRORS.get(cls.__name__) is cls:
            return cls.__name__
    return AgentError.__name__


def error_of(name: object, message: object) -> Exception:
    return ERRORS.get(str(name), AgentError)(str(message))


def manifest_to_json(manifest: SignedManifest) -> dict[str, Any]:
    return {
        "subject_name": manifest.subject_name,
        "bundle_digest": manifest.bundle_digest,
        "files": [[e.path, e.sha256] for e in manifest.files],
        "key_id": manifest.key_id,
    }


def manifest_of(data: dict[str, Any]) -> SignedManifest:
    return SignedManifest(
        subject_name=str(data["subject_name"]),
        bundle_digest=str(data["bundle_digest"]),
        files=tuple(ManifestEntry(str(p), str(h)) for p, h in data["files"]),
        key_id=str(data["key_id"]),
    )


def identity_to_json(identity: Identity | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    mac = identity.report_key
    return {
        "certificate_pem": identity.certificate_pem.decode("ascii"),
        "not_before": identity.not_before.isoformat(),
        "not_after": identity.not_after.isoformat(),
        "directory": str(identity.directory),
        "report_key": mac.secret.hex() if mac is not None else None,
    }


def identity_of(data: dict[str, Any] | None) -> Identity | None:
    if data is None:
        return None
    mac = data["report_key"]
    return Identity(
        certificate_pem=str(data["certificate_pem"]).encode("ascii"),
        not_before=datetime.fromisoformat(str(data["not_before"])),
        not_after=datetime.fromisoformat(str(data["not_after"])),
        directory=Path(str(data["directory"])),
        report_key=report_key(bytes.fromhex(str(mac))) if mac is not None else None,
    )
