"""The in-toto Statement v1 of OpenSSF model signing (predicate ``model_signing`` v1.0).

Built and parsed exactly as upstream ``model_signing`` 1.1 writes it for the "files"
serialization::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": NAME, "digest": {"sha256": BUNDLE_DIGEST}}],
     "predicateType": "https://model_signing/signature/v1.0",
     "predicate": {"serialization": {"method": "files", "hash_type": "sha256",
                                     "allow_symlinks": false, "ignore_paths": [...]},
                   "resources": [{"name": PATH, "algorithm": "sha256", "digest": HEX}, ...]}}

``resources`` are in upstream path order; the subject digest is sha256 over the
concatenated raw digests in that order. Parsing is strict: one subject, sha256 only,
"files" serialization without symlinks, safe, unique, ordered resource names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model_store.digests import bundle_digest, is_sha256_hex
from model_store.errors import BundleError, SignatureError
from model_store.paths import GIT_PATHS, SIGNATURE_FILENAME, check_relative_path, path_sort_key
from model_store.strict_json import StrictJson

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# What upstream's CLI records: its default git ignores plus the signature file.
IGNORE_PATHS: tuple[str, ...] = tuple(sorted(GIT_PATHS | {SIGNATURE_FILENAME}))
_SERIALIZATION_KEYS = frozenset({"method", "hash_type", "allow_symlinks", "ignore_paths"})


@dataclass(frozen=True)
class ManifestEntry:
    """One signed file: relative posix path and hex sha256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class SignedManifest:
    """What a verified signature vouches for.

    ``files`` are in upstream path order; ``bundle_digest`` is the in-toto subject
    digest; ``key_id`` names the trusted key that verified the signature.
    """

    subject_name: str
    bundle_digest: str
    files: tuple[ManifestEntry, ...]
    key_id: str


def build_statement(subject_name: str, entries: Sequence[ManifestEntry]) -> bytes:
    """The statement as the UTF-8 JSON payload to sign (entries in upstream order)."""
    ordered = sorted(entries, key=lambda entry: path_sort_key(entry.path))
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": subject_name,
                "digest": {"sha256": bundle_digest(entry.sha256 for entry in ordered)},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": list(IGNORE_PATHS),
            },
            "resources": [
                {"name": entry.path, "algorithm": "sha256", "digest": entry.sha256}
                for entry in ordered
            ],
        },
    }
    return json.dumps(statement, indent=2, ensure_ascii=False).encode("utf-8")


#: The signed statement's strict JSON and the wording of its errors.
_JSON = StrictJson(
    SignatureError,
    invalid="signature payload is not valid JSON: {exc}",
    duplicate="signature payload has a duplicate key {key}",
    not_object="signature payload is not a JSON object",
    missing="signature payload lacks {where}.{key}",
    wrong_type="signature payload {where}.{key} is not a {kind}",
)


def _check_serialization(serialization: dict[str, Any]) -> None:
    unknown = sorted(set(serialization) - _SERIALIZATION_KEYS)
    if unknown:
        raise SignatureError(f"unsupported serialization parameter {unknown[0]!r}")
    method = _JSON.req_str(serialization, "method", "serialization")
    if method != "files":
        raise SignatureError(f"unsupported serialization method {method!r} (expected 'files')")
    hash_type = _JSON.req_str(serialization, "hash_type", "serialization")
    if hash_type != "sha256":
        raise SignatureError(f"unsupported hash type {hash_type!r} (expected 'sha256')")
    if _JSON.req_bool(serialization, "allow_symlinks", "serialization") is not False:
        raise SignatureError("signature allows symbolic links; EdgeFleet bundles never do")
    ignore_paths = serialization.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise SignatureError("signature payload serialization.ignore_paths is not a string list")


def _parse_resources(resources: list[Any]) -> tuple[ManifestEntry, ...]:
    if not resources:
        raise SignatureError("signature covers no files")
    entries: list[ManifestEntry] = []
    for resource in resources:
        name = _JSON.req_str(resource, "name", "resource")
        try:
            check_relative_path(name, what="signed path")
        except BundleError as exc:
            raise SignatureError(str(exc)) from exc
        if name == SIGNATURE_FILENAME:
            raise SignatureError(f"signature covers its own file {name!r}")
        algorithm = _JSON.req_str(resource, "algorithm", "resource")
        if algorithm != "sha256":
            raise SignatureError(f"unsupported digest algorithm {algorithm!r} for {name!r}")
        digest = _JSON.req_str(resource, "digest", "resource")
        if not is_sha256_hex(digest):
            raise SignatureError(f"signed digest of {name!r} is not a lowercase sha256 hex")
        if entries and path_sort_key(entries[-1].path) >= path_sort_key(name):
            raise SignatureError(f"signed paths are duplicated or out of order at {name!r}")
        entries.append(ManifestEntry(path=name, sha256=digest))
    names = {entry.path for entry in entries}
    for entry in entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in names:
                raise SignatureError(f"signed path {entry.path!r} is inside a signed file")
    return tuple(entries)


def parse_statement(payload: bytes) -> tuple[str, str, tuple[ManifestEntry, ...]]:
    """Subject name, bundle digest and entries of a signed payload; ``SignatureError`` if bad.

    Checks the statement and predicate types, the serialization, every resource, and
    that the subject digest equals the digest recomputed from the resources.
    """
    statement = _JSON.parse_object(payload)
    statement_type = _JSON.req_str(statement, "_type", "statement")
    if statement_type != STATEMENT_TYPE:
        raise SignatureError(f"unsupported statement type {statement_type!r}")
    predicate_type = _JSON.req_str(statement, "predicateType", "statement")
    if predicate_type != PREDICATE_TYPE:
        raise SignatureError(
            f"unsupported predicate type {predicate_type!r} (expected {PREDICATE_TYPE})"
        )
    subjects = _JSON.req_list(statement, "subject", "statement")
    if len(subjects) != 1:
        raise SignatureError(f"signature must have exactly one subject, got {len(subjects)}")
    subject_name = _JSON.req_str(subjects[0], "name", "subject")
    digests = _JSON.req_dict(subjects[0], "digest", "subject")
    if set(digests) != {"sha256"} or not is_sha256_hex(digests["sha256"]):
        raise SignatureError("signature subject digest must be exactly one lowercase sha256")
    predicate = _JSON.req_dict(statement, "predicate", "statement")
    _check_serialization(_JSON.req_dict(predicate, "serialization", "predicate"))
    entries = _parse_resources(_JSON.req_list(predicate, "resources", "predicate"))
    recomputed = bundle_digest(entry.sha256 for entry in entries)
    if recomputed != digests["sha256"]:
        raise SignatureError(
            f"signature subject digest {digests['sha256']} does not match its files ({recomputed})"
        )
    return subject_name, recomputed, entries
