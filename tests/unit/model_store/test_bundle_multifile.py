"""Multi-file bundles: OpenVINO IR (.xml + .bin), ONNX external data, extra files, constraints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_store import (
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    BundleError,
    SignatureError,
    build_bundle,
    bundle_files,
    load_metadata,
    load_private_key,
    load_public_key,
    sign_bundle,
    verify_bundle,
    write_keypair,
)
from model_store.metadata import BundleConstraints, TensorSpec, parse_metadata
from model_store.openvino_io import read_openvino_io
from tests.support.onnx_models import external_data_model, two_input_model
from tests.support.openvino_models import two_input_ir

IR_INPUTS = [
    TensorSpec(name="x", dtype="float32", shape=["?", 4]),
    TensorSpec(name="ids", dtype="int64", shape=["?"]),
]
IR_OUTPUTS = [
    TensorSpec(name="y", dtype="float32", shape=["?", 3]),
    TensorSpec(name="n", dtype="int64", shape=["?"]),
]


def _sign_and_verify(bundle: Path, keys: Path) -> list[str]:
    key, pub = write_keypair(keys)
    sign_bundle(bundle, load_private_key(key))
    manifest = verify_bundle(bundle, [load_public_key(pub)])
    return [entry.path for entry in manifest.files]


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_ir_bundle_build_sign_verify_round_trip(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "det.xml")
    out = tmp_path / "bundle"
    meta = build_bundle(xml, out, name="det", version="2.0.0")
    assert (meta.framework, meta.model_file) == ("openvino", "det.xml")
    assert (meta.inputs, meta.outputs, meta.extra_files) == (IR_INPUTS, IR_OUTPUTS, [])
    assert load_metadata(out) == meta
    signed = _sign_and_verify(out, tmp_path / "keys")
    assert signed == ["det.bin", "det.xml", METADATA_FILENAME]
    assert (out / "det.bin").read_bytes() == (xml.parent / "det.bin").read_bytes()
    _flip_last_byte(out / "det.bin")
    with pytest.raises(SignatureError, match=r"'det\.bin' does not match its signature"):
        verify_bundle(out, [load_public_key(tmp_path / "keys" / "release.pub")])


def test_ir_directory_with_extra_files_all_signed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    two_input_ir(src / "model.xml")
    (src / "labels.txt").write_text("cat\ndog\n")
    (src / "preprocess").mkdir()
    (src / "preprocess" / "config.json").write_text('{"mean": [0.5]}')
    elsewhere = tmp_path / "more" / "classes.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("- cat\n")
    out = tmp_path / "bundle"
    meta = build_bundle(src, out, name="cls", version="1", extra_files=[elsewhere])
    assert meta.framework == "openvino"
    assert meta.extra_files == ["classes.yaml", "labels.txt", "preprocess/config.json"]
    signed = _sign_and_verify(out, tmp_path / "keys")
    assert signed == [
        "classes.yaml",
        METADATA_FILENAME,
        "labels.txt",
        "model.bin",
        "model.xml",
        "preprocess/config.json",
    ]
    _flip_last_byte(out / "labels.txt")
    with pytest.raises(SignatureError, match=r"'labels\.txt'"):
        verify_bundle(out, [load_public_key(tmp_path / "keys" / "release.pub")])


def test_ir_bundle_verifies_with_upstream_model_signing(tmp_path: Path) -> None:
    pytest.importorskip("model_signing")
    src = tmp_path / "src"
    two_input_ir(src / "model.xml")
    (src / "labels.txt").write_text("a\n")
    out = tmp_path / "bundle"
    build_bundle(src, out, name="det", version="1")
    key, pub = write_keypair(tmp_path / "keys")
    sign_bundle(out, load_private_key(key))
    sig = out / SIGNATURE_FILENAME
    args = ["verify", "key", str(out), "--signature", str(sig), "--public_key", str(pub)]
    done = subprocess.run(
        [sys.executable, "-m", "model_signing", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_onnx_external_data_round_trip(tmp_path: Path) -> None:
    model = external_data_model(tmp_path / "src" / "det.onnx", location="weights/det.data")
    out = tmp_path / "bundle"
    meta = build_bundle(model, out, name="det", version="1")
    assert (meta.framework, meta.model_file, meta.extra_files) == ("onnx", "det.onnx", [])
    signed = _sign_and_verify(out, tmp_path / "keys")
    assert signed == ["det.onnx", METADATA_FILENAME, "weights/det.data"]
    _flip_last_byte(out / "weights" / "det.data")
    with pytest.raises(SignatureError, match=r"'weights/det\.data'"):
        verify_bundle(out, [load_public_key(tmp_path / "keys" / "release.pub")])


def test_onnx_directory_external_data_is_model_data_and_the_rest_extra(tmp_path: Path) -> None:
    src = tmp_path / "src"
    external_data_model(src / "det.onnx", location="det.onnx.data")
    (src / "labels.txt").write_text("x\n")
    meta = build_bundle(src, tmp_path / "bundle", name="det", version="1")
    assert meta.extra_files == ["labels.txt"]
    assert sorted(f.path for f in bundle_files(tmp_path / "bundle")) == [
        "det.onnx",
        "det.onnx.data",
        METADATA_FILENAME,
        "labels.txt",
    ]


def test_single_onnx_metadata_is_unchanged_by_the_new_fields(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "det.onnx")
    build_bundle(model, tmp_path / "bundle", name="det", version="1")
    data = json.loads((tmp_path / "bundle" / METADATA_FILENAME).read_text())
    assert list(data) == [
        "schema_version",
        "name",
        "version",
        "framework",
        "model_file",
        "inputs",
        "outputs",
    ]


def test_constraints_are_written_and_read_back(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    wanted = {"runtimes": ["openvino"], "min_ram_bytes": 2 << 30, "cpu_flags": ["avx2"]}
    meta = build_bundle(xml, tmp_path / "b1", name="m", version="1", constraints=wanted)
    assert meta.constraints == BundleConstraints(**wanted)  # type: ignore[arg-type]
    assert load_metadata(tmp_path / "b1").constraints == meta.constraints
    data = json.loads((tmp_path / "b1" / METADATA_FILENAME).read_text())
    assert data["constraints"] == wanted
    partial = BundleConstraints(min_ram_bytes=1024)
    meta = build_bundle(xml, tmp_path / "b2", name="m", version="1", constraints=partial)
    data = json.loads((tmp_path / "b2" / METADATA_FILENAME).read_text())
    assert data["constraints"] == {"min_ram_bytes": 1024}


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"gpu": True}, r"invalid constraints: gpu: Extra inputs are not permitted"),
        ({"runtimes": ["openvno"]}, r"unknown runtime 'openvno'"),
        ({"runtimes": ["onnxruntime"]}, r"an OpenVINO IR runs only on runtime 'openvino'"),
        ({"runtimes": []}, r"runtimes"),
        ({"min_ram_bytes": 0}, r"min_ram_bytes"),
        ({"min_ram_bytes": True}, r"min_ram_bytes"),
        ({"cpu_flags": ["AVX2"]}, r"invalid CPU flag 'AVX2'"),
        ({"cpu_flags": ["avx2", "avx2"]}, r"duplicate CPU flag 'avx2'"),
    ],
)
def test_bad_constraints_are_refused(tmp_path: Path, constraints: object, message: str) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    with pytest.raises(BundleError, match=message) as info:
        build_bundle(xml, tmp_path / "b", name="m", version="1", constraints=constraints)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert not (tmp_path / "b").exists()


def test_ir_without_its_bin_is_refused(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    (xml.parent / "m.bin").unlink()
    with pytest.raises(BundleError, match=r"m\.bin is missing"):
        build_bundle(xml, tmp_path / "b1", name="m", version="1")
    with pytest.raises(BundleError, match=r"m\.bin is missing"):
        build_bundle(xml.parent, tmp_path / "b2", name="m", version="1")
    with pytest.raises(BundleError, match=r"m\.bin is missing"):
        read_openvino_io(xml)


def test_ir_with_a_truncated_bin_or_garbage_xml_is_refused(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    (xml.parent / "m.bin").write_bytes(b"\0" * 8)
    with pytest.raises(BundleError, match=r"m\.xml is not a valid OpenVINO IR") as info:
        build_bundle(xml, tmp_path / "b1", name="m", version="1")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "b1").exists()
    xml.write_text("<net>not an IR")
    with pytest.raises(BundleError, match=r"not a valid OpenVINO IR"):
        build_bundle(xml, tmp_path / "b2", name="m", version="1")


def test_missing_openvino_is_a_clear_bundle_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    with pytest.raises(BundleError, match="OpenVINO is not installed") as info:
        build_bundle(xml, tmp_path / "b", name="m", version="1")
    assert "\n" not in str(info.value)


def test_symlinked_bin_is_refused(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "real" / "m.xml")
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.xml").write_bytes(xml.read_bytes())
    os.symlink(xml.parent / "m.bin", src / "m.bin")
    with pytest.raises(BundleError, match=r"'m\.bin': symbolic links are not allowed"):
        build_bundle(src / "m.xml", tmp_path / "b1", name="m", version="1")
    with pytest.raises(BundleError, match=r"'m\.bin': symbolic links are not allowed"):
        build_bundle(src, tmp_path / "b2", name="m", version="1")


def test_unsafe_or_duplicate_extra_files_are_refused(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.bin").write_bytes(b"x")
    (other / "M.XML").write_text("x")
    (other / METADATA_FILENAME).write_text("{}")
    os.symlink(tmp_path / "src" / "m.xml", other / "link.txt")

    def build(extra: Path) -> None:
        build_bundle(xml, tmp_path / "b", name="m", version="1", extra_files=[extra])

    with pytest.raises(BundleError, match=r"duplicate bundle path 'm\.bin'"):
        build(other / "m.bin")
    with pytest.raises(BundleError, match=r"differ only in case"):
        build(other / "M.XML")
    with pytest.raises(BundleError, match="reserved bundle file name"):
        build(other / METADATA_FILENAME)
    with pytest.raises(BundleError, match="symbolic links are not allowed"):
        build(other / "link.txt")
    with pytest.raises(BundleError, match="symbolic links are not allowed"):
        build(other)  # a directory is taken whole: its link is refused
    with pytest.raises(BundleError, match="extra file not found"):
        build(other / "nope.txt")
    assert not (tmp_path / "b").exists()


def test_an_extra_file_cannot_shadow_an_external_data_directory(tmp_path: Path) -> None:
    model = external_data_model(tmp_path / "src" / "m.onnx", location="weights/m.data")
    (tmp_path / "weights").write_text("not a directory")
    with pytest.raises(BundleError, match="duplicate bundle path 'weights'"):
        build_bundle(
            model, tmp_path / "b", name="m", version="1", extra_files=[tmp_path / "weights"]
        )


def test_a_directory_with_an_onnx_and_an_ir_is_ambiguous(tmp_path: Path) -> None:
    src = tmp_path / "src"
    two_input_ir(src / "m.xml")
    two_input_model(src / "m.onnx")
    with pytest.raises(
        BundleError, match=r"exactly one top-level \.onnx.*found 2: m\.onnx, m\.xml"
    ):
        build_bundle(src, tmp_path / "b", name="m", version="1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"framework": "openvino"}, r"must end in \.xml"),
        ({"framework": "Open VINO"}, "invalid framework"),
        ({"extra_files": ["../x"]}, "unsafe extra file"),
        ({"extra_files": ["a", "a"]}, "duplicate extra file 'a'"),
        ({"extra_files": ["m.onnx"]}, "also listed as an extra file"),
        ({"constraints": {"min_ram_bytes": 1, "gpus": 1}}, r"constraints\.gpus"),
    ],
)
def test_parse_metadata_refuses_inconsistent_content(
    changes: dict[str, object], message: str
) -> None:
    data: dict[str, object] = {
        "name": "m",
        "version": "1",
        "framework": "onnx",
        "model_file": "m.onnx",
        "inputs": [],
        "outputs": [],
    }
    data.update(changes)
    with pytest.raises(BundleError, match=message) as info:
        parse_metadata(json.dumps(data).encode(), shown_as="edgefleet.json")
    assert "\n" not in str(info.value)


def test_parse_metadata_of_downloaded_bytes(tmp_path: Path) -> None:
    xml, _ = two_input_ir(tmp_path / "src" / "m.xml")
    meta = build_bundle(
        xml, tmp_path / "b", name="m", version="1", constraints={"cpu_flags": ["avx2"]}
    )
    assert parse_metadata((tmp_path / "b" / METADATA_FILENAME).read_bytes()) == meta
    with pytest.raises(BundleError, match="larger than"):
        parse_metadata(b" " * (1024 * 1024 + 1))
