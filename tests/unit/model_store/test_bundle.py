"""Bundles: building from a file or a directory, metadata, listing, and unsafe paths."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from model_store import (
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    BundleError,
    BundleMetadata,
    ModelStoreError,
    TensorSpec,
    build_bundle,
    bundle_files,
    load_metadata,
    read_onnx_io,
    sha256_file,
)


def rich_model(path: Path, *, external_data: str | None = None) -> Path:
    """x float32 [batch, 4], ids int64 [batch], mask bool [?]; 'scale' is an initializer
    that is also listed as a graph input (older exporters do that)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, [None])
    scale_in = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    half = helper.make_tensor_value_info("half", TensorProto.FLOAT16, ["batch", 4])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"])
    inverted = helper.make_tensor_value_info("inverted", TensorProto.BOOL, [None])
    scale = numpy_helper.from_array(np.linspace(1, 2, 256 // 64, dtype=np.float32), "scale")
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["y"]),
        helper.make_node("Cast", ["y"], ["half"], to=TensorProto.FLOAT16),
        helper.make_node("Identity", ["ids"], ["n"]),
        helper.make_node("Not", ["mask"], ["inverted"]),
    ]
    graph = helper.make_graph(
        nodes, "rich", [x, ids, mask, scale_in], [y, half, n, inverted], [scale]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        onnx.save(model, str(path))
    else:
        (path.parent / external_data).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=external_data,
            size_threshold=0,
        )
    return path


EXPECTED_INPUTS = [
    TensorSpec(name="x", dtype="float32", shape=["batch", 4]),
    TensorSpec(name="ids", dtype="int64", shape=["batch"]),
    TensorSpec(name="mask", dtype="bool", shape=["?"]),
]
EXPECTED_OUTPUTS = [
    TensorSpec(name="y", dtype="float32", shape=["batch", 4]),
    TensorSpec(name="half", dtype="float16", shape=["batch", 4]),
    TensorSpec(name="n", dtype="int64", shape=["batch"]),
    TensorSpec(name="inverted", dtype="bool", shape=["?"]),
]


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_read_onnx_io_reports_dynamic_dims_and_skips_initializers(tmp_path: Path) -> None:
    inputs, outputs = read_onnx_io(rich_model(tmp_path / "m.onnx"))
    assert inputs == EXPECTED_INPUTS
    assert outputs == EXPECTED_OUTPUTS


def test_build_from_file(tmp_path: Path) -> None:
    model = rich_model(tmp_path / "src" / "detector.onnx")
    out = tmp_path / "bundle"
    metadata = build_bundle(model, out, name="det", version="1.4.0")
    assert metadata == BundleMetadata(
        name="det",
        version="1.4.0",
        model_file="detector.onnx",
        inputs=EXPECTED_INPUTS,
        outputs=EXPECTED_OUTPUTS,
    )
    assert metadata.schema_version == 1 and metadata.framework == "onnx"
    assert _tree(out) == ["detector.onnx", METADATA_FILENAME]
    assert (out / "detector.onnx").read_bytes() == model.read_bytes()
    assert load_metadata(out) == metadata
    raw = json.loads((out / METADATA_FILENAME).read_text())
    assert raw["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["batch", 4]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_build_from_a_linked_model_file_keeps_the_link_name(tmp_path: Path) -> None:
    target = rich_model(tmp_path / "store" / "blob-1234.onnx")
    link = tmp_path / "detector.onnx"
    link.symlink_to(target)
    out = tmp_path / "bundle"
    assert build_bundle(link, out, name="det", version="1").model_file == "detector.onnx"
    assert (out / "detector.onnx").read_bytes() == target.read_bytes()
    assert not (out / "detector.onnx").is_symlink()


def test_build_from_file_takes_its_external_data(tmp_path: Path) -> None:
    model = rich_model(tmp_path / "src" / "big.onnx", external_data="big.onnx.data")
    out = tmp_path / "bundle"
    metadata = build_bundle(model, out, name="big", version="2")
    assert _tree(out) == ["big.onnx", "big.onnx.data", METADATA_FILENAME]
    assert metadata.inputs == EXPECTED_INPUTS
    assert read_onnx_io(out / "big.onnx") == (EXPECTED_INPUTS, EXPECTED_OUTPUTS)


def test_build_from_directory_copies_every_file_but_git_metadata(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_model(src / "model.onnx", external_data="weights/model.bin")
    (src / "labels.txt").write_text("cat\ndog\n")
    (src / "extra").mkdir()
    (src / "extra" / "x.txt").write_text("x")
    (src / "extra-data.txt").write_text("y")
    (src / "nested").mkdir()
    (src / "nested" / "other.onnx").write_bytes(b"not a model, and not top-level")
    (src / ".gitattributes").write_text("*.onnx filter=lfs\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    out = tmp_path / "bundle"
    out.mkdir()  # an existing empty directory is fine
    metadata = build_bundle(src, out, name="det", version="1.4.0+build.7")
    assert metadata.model_file == "model.onnx"
    assert metadata.inputs == EXPECTED_INPUTS
    files = bundle_files(out)
    # upstream model_signing order: by path components, so "extra/x.txt" < "extra-data.txt"
    assert [f.path for f in files] == [
        METADATA_FILENAME,
        "extra/x.txt",
        "extra-data.txt",
        "labels.txt",
        "model.onnx",
        "nested/other.onnx",
        "weights/model.bin",
    ]
    for f in files:
        assert f.sha256 == sha256_file(out / f.path)
        assert f.sha256 == hashlib.sha256((out / f.path).read_bytes()).hexdigest()
        assert f.size == (out / f.path).stat().st_size


def test_bundle_files_excludes_signature(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    build_bundle(rich_model(tmp_path / "m.onnx"), out, name="det", version="1")
    (out / SIGNATURE_FILENAME).write_text("{}")
    assert [f.path for f in bundle_files(out)] == [METADATA_FILENAME, "m.onnx"]


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world, not a protobuf", b"\x08\x07", b"\x08\x08\x12\x00"],
    ids=["empty", "text", "no-opset", "empty-graph"],
)
def test_invalid_onnx_is_a_bundle_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(BundleError, match=r"bad\.onnx is not a valid ONNX model") as info:
        build_bundle(bad, tmp_path / "out", name="det", version="1")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(BundleError):
        read_onnx_io(bad)


def test_missing_source_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        build_bundle(tmp_path / "nope.onnx", tmp_path / "out", name="det", version="1")
    model = rich_model(tmp_path / "m.onnx")
    renamed = model.rename(tmp_path / "m.bin")
    with pytest.raises(BundleError, match=r"not an \.onnx file"):
        build_bundle(renamed, tmp_path / "out", name="det", version="1")
    with pytest.raises(BundleError, match="not found"):
        read_onnx_io(tmp_path / "nope.onnx")


@pytest.mark.parametrize("count", [0, 2])
def test_directory_needs_exactly_one_top_level_model(tmp_path: Path, count: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.txt").write_text("hi")
    for i in range(count):
        rich_model(src / f"m{i}.onnx")
    with pytest.raises(BundleError, match=r"exactly one top-level \.onnx"):
        build_bundle(src, tmp_path / "out", name="det", version="1")


def test_output_must_be_new_or_empty_and_outside_the_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_model(src / "m.onnx")
    out = tmp_path / "out"
    out.mkdir()
    (out / "leftover").write_text("x")
    with pytest.raises(BundleError, match="not empty"):
        build_bundle(src, out, name="det", version="1")
    with pytest.raises(BundleError, match="inside the source"):
        build_bundle(src, src / "bundle", name="det", version="1")


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "has space", "-dash", "x" * 129])
def test_bad_model_name_or_version(tmp_path: Path, name: str) -> None:
    model = rich_model(tmp_path / "m.onnx")
    with pytest.raises(BundleError, match="invalid model name"):
        build_bundle(model, tmp_path / "out", name=name, version="1")
    with pytest.raises(BundleError, match="invalid model version"):
        build_bundle(model, tmp_path / "out", name="det", version=name)


def test_source_directory_symlinks_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship me")
    src = tmp_path / "src"
    rich_model(src / "m.onnx")
    (src / "labels.txt").symlink_to(secret)
    with pytest.raises(BundleError, match=r"'labels.txt': symbolic links are not allowed"):
        build_bundle(src, tmp_path / "out", name="det", version="1")
    assert not (tmp_path / "out").exists()
    (src / "labels.txt").unlink()
    (tmp_path / "elsewhere").mkdir()
    (src / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(BundleError, match=r"'sub': symbolic links are not allowed"):
        build_bundle(src, tmp_path / "out", name="det", version="1")


def test_special_files_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_model(src / "m.onnx")
    os.mkfifo(src / "pipe")
    with pytest.raises(BundleError, match="'pipe': not a regular file"):
        build_bundle(src, tmp_path / "out", name="det", version="1")


def _point_external_data(model_path: Path, location: str) -> None:
    model = onnx.load(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(model_path))


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd"])
def test_external_data_outside_the_model_is_refused(tmp_path: Path, location: str) -> None:
    src = tmp_path / "src"
    model = rich_model(src / "m.onnx", external_data="w.bin")
    (src / "w.bin").rename(tmp_path / "outside.bin")
    _point_external_data(model, location)
    with pytest.raises(BundleError, match="not a valid ONNX model"):
        build_bundle(model, tmp_path / "out1", name="det", version="1")
    with pytest.raises(BundleError, match="not a valid ONNX model"):
        build_bundle(src, tmp_path / "out2", name="det", version="1")
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_directory_holding_a_bundle_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    build_bundle(rich_model(tmp_path / "m.onnx"), out, name="det", version="1")
    with pytest.raises(BundleError, match="reserved bundle file name"):
        build_bundle(out, tmp_path / "again", name="det", version="2")


@pytest.mark.parametrize(
    "filename", ["new\nline.txt", "back\\slash.txt", "bell\x07.txt"], ids=["lf", "bs", "ctl"]
)
def test_unsafe_file_names_are_refused(tmp_path: Path, filename: str) -> None:
    out = tmp_path / "bundle"
    build_bundle(rich_model(tmp_path / "m.onnx"), out, name="det", version="1")
    (out / filename).write_text("x")
    with pytest.raises(BundleError, match="unsafe path") as info:
        bundle_files(out)
    assert "\n" not in str(info.value)


def test_bundle_files_refuses_symlinks_and_git_metadata(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    build_bundle(rich_model(tmp_path / "m.onnx"), out, name="det", version="1")
    (out / "link").symlink_to(out / "m.onnx")
    with pytest.raises(BundleError, match="symbolic links"):
        bundle_files(out)
    (out / "link").unlink()
    (out / ".gitignore").write_text("*")
    with pytest.raises(BundleError, match="git metadata"):
        bundle_files(out)
    with pytest.raises(BundleError, match="not found"):
        bundle_files(tmp_path / "missing")


def _write_metadata(bundle: Path, **changes: object) -> None:
    data: dict[str, object] = {
        "schema_version": 1,
        "name": "det",
        "version": "1",
        "framework": "onnx",
        "model_file": "m.onnx",
        "inputs": [],
        "outputs": [],
    }
    data.update(changes)
    (bundle / METADATA_FILENAME).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_file": "../m.onnx"}, "model_file"),
        ({"model_file": "/etc/passwd"}, "absolute path"),
        ({"schema_version": 2}, "unsupported schema_version 2"),
        ({"inputs": [{"name": "x"}]}, r"inputs\.0\.dtype"),
        ({"name": None}, "name"),
    ],
)
def test_load_metadata_rejects_bad_content(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    _write_metadata(tmp_path, **changes)
    with pytest.raises(BundleError, match=message) as info:
        load_metadata(tmp_path)
    assert "\n" not in str(info.value)


def test_load_metadata_missing_not_json_duplicate_keys_symlink(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is missing"):
        load_metadata(tmp_path)
    (tmp_path / METADATA_FILENAME).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_metadata(tmp_path)
    (tmp_path / METADATA_FILENAME).write_text('{"name": "a", "name": "b"}')
    with pytest.raises(BundleError, match="duplicate key 'name'"):
        load_metadata(tmp_path)
    (tmp_path / METADATA_FILENAME).unlink()
    target = tmp_path / "real.json"
    _write_metadata(tmp_path)
    (tmp_path / METADATA_FILENAME).rename(target)
    (tmp_path / METADATA_FILENAME).symlink_to(target)
    with pytest.raises(BundleError, match="symbolic links"):
        load_metadata(tmp_path)


def test_errors_are_model_store_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError):
        load_metadata(tmp_path)
