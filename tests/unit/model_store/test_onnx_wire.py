"""``onnx_wire.external_data_locations`` (no onnx import) answers what onnx's own
``onnx_io.external_data_files`` answers, wherever a graph keeps a tensor."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from model_store.errors import BundleError
from model_store.onnx_io import external_data_files
from model_store.onnx_wire import external_data_locations
from tests.support.onnx_models import external_data_model, two_input_model


def _external(name: str, location: str) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[1])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="offset", value="0")
    tensor.external_data.add(key="location", value=location)
    return tensor


def _everywhere(path: Path) -> Path:
    """External tensors in an initializer, a sparse initializer, a Constant's ``t``, and
    an initializer of an If's subgraph; an inline initializer beside them."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    flag = helper.make_tensor_value_info("flag", TensorProto.BOOL, [])
    branch = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
        [_external("s", "sub/branch.bin")],
    )
    sparse = helper.make_sparse_tensor(
        _external("sv", "sparse.bin"), helper.make_tensor("si", TensorProto.INT64, [1], [0]), [1]
    )
    nodes = [
        helper.make_node("Constant", [], ["c"], value=_external("c", "const.bin")),
        helper.make_node("If", ["flag"], ["b"], then_branch=branch, else_branch=branch),
        helper.make_node("Sum", ["x", "c", "b", "w", "inline"], ["y"]),
    ]
    inline = helper.make_tensor("inline", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        nodes, "g", [x, flag], [y], [_external("w", "w.bin"), inline], sparse_initializer=[sparse]
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def _onnx_answer(path: Path) -> list[str]:
    return external_data_files(onnx.load(str(path), load_external_data=False))


def test_the_same_locations_as_onnx_wherever_the_tensors_are(tmp_path: Path) -> None:
    everywhere = _everywhere(tmp_path / "all.onnx")
    assert external_data_locations(everywhere) == _onnx_answer(everywhere)
    assert external_data_locations(everywhere) == [
        "const.bin",
        "sparse.bin",
        "sub/branch.bin",
        "w.bin",
    ]
    saved = external_data_model(tmp_path / "saved" / "m.onnx", location="data/m.data")
    assert external_data_locations(saved) == _onnx_answer(saved) == ["data/m.data"]
    inline = two_input_model(tmp_path / "inline" / "m.onnx")
    assert external_data_locations(inline) == _onnx_answer(inline) == []


def test_an_unsafe_location_is_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([], "g", [x], [x], [_external("w", "../outside.bin")])
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    unsafe = re.escape("unsafe external data location '../outside.bin'")
    with pytest.raises(BundleError, match=unsafe):
        external_data_locations(tmp_path / "m.onnx")


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_malformed_protobuf_is_one_line_error(tmp_path: Path, cut: int) -> None:
    whole = _everywhere(tmp_path / "all.onnx").read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(whole[:-cut])  # a field cut short
    with pytest.raises(BundleError, match=r"^not a well-formed ONNX model: ") as info:
        external_data_locations(broken)
    assert "\n" not in str(info.value)
