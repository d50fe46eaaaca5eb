"""The bundle's backend selection settings (``BundleSelection``): a pin and a tolerance,
written into ``edgefleet.json`` so the operator's signature covers them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_store import (
    METADATA_FILENAME,
    BundleError,
    BundleSelection,
    SignatureError,
    build_bundle,
    load_metadata,
    load_private_key,
    load_public_key,
    parse_metadata,
    sign_bundle,
    verify_bundle,
    write_keypair,
)
from tests.support.onnx_models import two_input_model


def test_pin_and_tolerance_are_written_signed_and_read_back(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "det.onnx")
    wanted = {"pin": "openvino:CPU:f32", "tolerance": 0.002}
    meta = build_bundle(model, tmp_path / "b", name="det", version="1", selection=wanted)
    assert meta.selection == BundleSelection(pin="openvino:CPU:f32", tolerance=0.002)
    assert load_metadata(tmp_path / "b").selection == meta.selection
    data = json.loads((tmp_path / "b" / METADATA_FILENAME).read_text())
    assert data["selection"] == wanted

    key, pub = write_keypair(tmp_path / "keys")
    sign_bundle(tmp_path / "b", load_private_key(key))
    verify_bundle(tmp_path / "b", [load_public_key(pub)])
    # the pin is signed: changing it after signing breaks the signature
    edited = (tmp_path / "b" / METADATA_FILENAME).read_text().replace("CPU:f32", "CPU:bf16")
    (tmp_path / "b" / METADATA_FILENAME).write_text(edited)
    with pytest.raises(SignatureError, match=r"edgefleet\.json"):
        verify_bundle(tmp_path / "b", [load_public_key(pub)])


def test_partial_and_empty_selection(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "det.onnx")
    only_tolerance = BundleSelection(tolerance=0.05)
    build_bundle(model, tmp_path / "b1", name="det", version="1", selection=only_tolerance)
    data = json.loads((tmp_path / "b1" / METADATA_FILENAME).read_text())
    assert data["selection"] == {"tolerance": 0.05}
    # a selection that says nothing is left out: the metadata is as without it
    meta = build_bundle(model, tmp_path / "b2", name="det", version="1", selection={})
    assert meta.selection is None
    assert "selection" not in json.loads((tmp_path / "b2" / METADATA_FILENAME).read_text())


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"pin": "openvino"}, r"invalid selection: pin: String should match pattern"),
        ({"pin": "OpenVINO:CPU:f32"}, r"pin: String should match pattern"),
        ({"pin": "openvino:CPU:f32:x"}, r"pin: String should match pattern"),
        ({"pin": "a:b:" + "c" * 130}, r"pin: String should have at most 128 characters"),
        ({"tolerance": 0}, r"tolerance: Input should be greater than 0"),
        ({"tolerance": 1.5}, r"tolerance: Input should be less than or equal to 1"),
        ({"tolerance": float("nan")}, r"tolerance"),
        ({"tolerance": "lots"}, r"tolerance"),
        ({"pinned": "openvino:CPU:f32"}, r"pinned: Extra inputs are not permitted"),
    ],
)
def test_bad_selection_is_refused_in_one_line(
    tmp_path: Path, selection: dict[str, object], message: str
) -> None:
    model = two_input_model(tmp_path / "det.onnx")
    with pytest.raises(BundleError, match=message) as info:
        build_bundle(model, tmp_path / "b", name="det", version="1", selection=selection)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "b").exists()


def test_metadata_with_a_bad_selection_is_malformed(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "det.onnx")
    build_bundle(model, tmp_path / "b", name="det", version="1")
    data = json.loads((tmp_path / "b" / METADATA_FILENAME).read_text())
    good = parse_metadata(json.dumps(data | {"selection": {"pin": "a_b:GPU.1:f16"}}).encode())
    assert good.selection is not None and good.selection.pin == "a_b:GPU.1:f16"
    with pytest.raises(BundleError, match=r"malformed: selection\.pin"):
        parse_metadata(json.dumps(data | {"selection": {"pin": "a/b:c:d"}}).encode())
