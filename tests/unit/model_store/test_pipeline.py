"""Pipeline specs (``model_store.pipeline``): the wiring rules, each refusal one line, and
a pipeline bundle built and signed like any other."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from model_store import (
    BundleError,
    build_bundle,
    bundle_files,
    generate_private_key,
    load_metadata,
    parse_pipeline,
    sign_bundle,
    verify_bundle,
)

SPEC: dict[str, Any] = {
    "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, "h", "w"]}],
    "steps": [
        {"name": "det", "model": "det", "version": "1.4.0", "inputs": {"x": "input/image"}},
        {"name": "cls", "model": "cls", "version": "2.0.1",
         "inputs": {"crops": "det/model/crops:0", "image": "input/image"}},
    ],
    "outputs": [{"name": "label", "dtype": "int64", "shape": [1], "from": "cls/label"}],
}  # fmt: skip


def _raw(spec: dict[str, Any]) -> bytes:
    return json.dumps(spec).encode()


def _edit(path: str, value: Any) -> dict[str, Any]:
    """SPEC with the value at ``path`` (dot-separated keys / list indexes) replaced."""
    spec = copy.deepcopy(SPEC)
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return spec


def test_a_good_spec_parses_and_splits_sources_at_the_first_slash() -> None:
    spec = parse_pipeline(_raw(SPEC), name="ocr")
    assert [s.name for s in spec.steps] == ["det", "cls"]
    assert spec.models() == [("det", "1.4.0"), ("cls", "2.0.1")]
    assert spec.steps[1].inputs["crops"] == "det/model/crops:0"
    assert [o.name for o in spec.output_specs()] == ["label"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_edit("steps.1.inputs.crops", "nope/y"), "reads 'nope/y': no step 'nope'"),
        (_edit("steps.0.inputs.x", "cls/crops"), "step 'cls' does not run before it"),
        (_edit("steps.0.inputs.x", "det/y"), "step 'det' does not run before it"),
        (_edit("steps.0.inputs.x", "input/nope"), "the pipeline has no input 'nope'"),
        (_edit("steps.0.inputs.x", "image"), "must be 'input/NAME' or 'STEP/OUTPUT'"),
        (_edit("steps.1.name", "det"), "duplicate step 'det'"),
        (_edit("steps.0.name", "input"), "a step may not be called 'input'"),
        (_edit("steps.0.model", "../x"), "steps.0.model"),
        (_edit("steps.0.version", ""), "steps.0.version"),
        (_edit("steps.0.model", "ocr"), "step 'det' runs the pipeline itself"),
        (_edit("outputs.0.from", "cls"), "must be 'input/NAME' or 'STEP/OUTPUT'"),
        (_edit("outputs.0.from", "gone/label"), "no step 'gone'"),
        (_edit("steps", []), "steps: List should have at least 1 item"),
        (_edit("steps.0.inputs", {}), "steps.0.inputs"),
        (_edit("steps.0.extra", 1), "steps.0.extra"),
        (_edit("inputs.0.color", "red"), "inputs.0.color"),
    ],
)
def test_a_bad_spec_is_refused_in_one_line(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(BundleError) as info:
        parse_pipeline(_raw(spec), name="ocr")
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_duplicate_names_and_keys_are_refused() -> None:
    twice = copy.deepcopy(SPEC)
    twice["outputs"].append(dict(twice["outputs"][0]))
    with pytest.raises(BundleError, match="duplicate output 'label'"):
        parse_pipeline(_raw(twice))
    with pytest.raises(BundleError, match="duplicate key"):
        parse_pipeline(b'{"inputs": [], "inputs": []}')


def test_a_pipeline_bundle_is_built_and_signed_like_any_other(tmp_path: Path) -> None:
    source = tmp_path / "src" / "ocr.pipeline.json"
    source.parent.mkdir()
    source.write_bytes(_raw(SPEC))
    out = tmp_path / "bundle"
    metadata = build_bundle(source, out, name="ocr", version="1.0")
    assert metadata.framework == "pipeline"
    assert metadata.model_file == "ocr.pipeline.json"
    assert [i.name for i in metadata.inputs] == ["image"]
    assert metadata.outputs[0].model_dump() == {"name": "label", "dtype": "int64", "shape": [1]}
    assert load_metadata(out) == metadata
    key = generate_private_key()
    sign_bundle(out, key)
    manifest = verify_bundle(out, [key.public_key()])
    assert "ocr.pipeline.json" in {e.path for e in manifest.files}  # the signature covers it
    assert {f.path for f in bundle_files(out)} == {"edgefleet.json", "ocr.pipeline.json"}
    parse_pipeline((out / "ocr.pipeline.json").read_bytes(), metadata=metadata)


def test_a_pipeline_bundle_refuses_a_backend_pin_and_a_bad_spec(tmp_path: Path) -> None:
    source = tmp_path / "ocr.pipeline.json"
    source.write_bytes(_raw(SPEC))
    with pytest.raises(BundleError, match="a pipeline has no backend to select"):
        build_bundle(source, tmp_path / "a", name="ocr", version="1", selection={"pin": "a:b:c"})
    with pytest.raises(BundleError, match="runs on no runtime of its own"):
        build_bundle(
            source, tmp_path / "b", name="ocr", version="1", constraints={"runtimes": ["openvino"]}
        )
    source.write_bytes(_raw(_edit("steps.0.model", "ocr")))
    with pytest.raises(BundleError, match="runs the pipeline itself"):
        build_bundle(source, tmp_path / "c", name="ocr", version="1")
    assert not (tmp_path / "c").exists()


def test_metadata_that_differs_from_the_spec_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "ocr.pipeline.json"
    source.write_bytes(_raw(SPEC))
    metadata = build_bundle(source, tmp_path / "out", name="ocr", version="1")
    other = _edit("outputs.0.dtype", "float32")
    with pytest.raises(BundleError, match="outputs differ from those of the bundle metadata"):
        parse_pipeline(_raw(other), metadata=metadata)
