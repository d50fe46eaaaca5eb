"""The parts of ``model_store`` the agent's long-lived process uses import without
``cryptography``.

Why: issue 18 caps the agent process's own memory share at 40 MB, and ``cryptography``
costs ~11 MB of RSS that Python never gives back once imported. The agent runs every
public-key operation (ECDSA sign/verify, CSRs, certificates, report-key unwrap) in a
short-lived child process, so its main process must be able to import these modules,
and the package's names they define, without any ``cryptography`` module appearing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import model_store
from model_store import dsse, dsse_codec, report_key, report_key_wrap

#: Imported in this order in one fresh interpreter; the first that loads cryptography is named.
CRYPTO_FREE = [
    "model_store",
    "model_store.errors",
    "model_store.paths",
    "model_store.digests",
    "model_store.strict_json",
    "model_store.statement",
    "model_store.input_hints",
    "model_store.metadata",
    "model_store.pipeline",
    "model_store.onnx_wire",
    "model_store.onnx_io",
    "model_store.envelope",
    "model_store.dsse_codec",
    "model_store.bundle",
    "model_store.report_key",
    "model_store.report_seal",
    "model_store.report_ack",
]
#: Names taken from the package itself (its lazy ``__getattr__``) that must stay light.
PACKAGE_NAMES = [
    "ModelStoreError",
    "SignatureError",
    "SignedManifest",
    "ManifestEntry",
    "BundleMetadata",
    "PipelineSpec",
    "InputHint",
    "sha256_file",
    "build_bundle",
    "decode_envelope",
    "encode_envelope",
    "envelope_payload",
]

_PROBE = """
import importlib, json, sys
def crypto():
    return sorted(m for m in sys.modules if m.split(".")[0] == "cryptography")
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    if crypto():
        print(json.dumps({"culprit": name, "loaded": crypto()[:5]}))
        sys.exit(0)
import model_store
for name in json.loads(sys.argv[2]):
    getattr(model_store, name)
    if crypto():
        print(json.dumps({"culprit": "model_store." + name, "loaded": crypto()[:5]}))
        sys.exit(0)
print(json.dumps({"culprit": None, "loaded": []}))
"""


def test_agent_side_modules_import_without_cryptography() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(CRYPTO_FREE), json.dumps(PACKAGE_NAMES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert json.loads(done.stdout) == {"culprit": None, "loaded": []}


def test_the_lazy_package_still_offers_every_public_name() -> None:
    assert len(set(model_store.__all__)) == len(model_store.__all__)
    for name in model_store.__all__:
        assert getattr(model_store, name) is not None, name
    assert set(model_store.__all__) <= set(dir(model_store))
    assert model_store.decode_envelope is dsse.decode_envelope is dsse_codec.decode_envelope
    assert model_store.sign_envelope is dsse.sign_envelope


def test_moved_names_stay_importable_from_their_old_modules() -> None:
    from model_store.report_key import unwrap_report_key, wrap_report_key

    assert unwrap_report_key is report_key_wrap.unwrap_report_key
    assert wrap_report_key is report_key_wrap.wrap_report_key
    assert dsse.open_envelope_by is dsse_codec.open_envelope_by
    assert dsse.envelope_payload is dsse_codec.envelope_payload
    assert not hasattr(report_key, "no_such_name")
    assert not hasattr(model_store, "no_such_name")
