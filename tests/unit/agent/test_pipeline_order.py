"""``pipelines_last``: a generation installs its pipelines after the models they run."""

from __future__ import annotations

from agent.deployment.pipeline_order import pipelines_last
from protocol import FileRef, ModelAssignment


def _assignment(name: str, *paths: str) -> ModelAssignment:
    files = [FileRef(path=p, sha256="ab" * 32, size=1) for p in ("edgefleet.json", *paths)]
    return ModelAssignment(
        deployment_id=1,
        name=name,
        version="1",
        bundle_digest="cd" * 32,
        size=10,
        signature=FileRef(path="model.sig", sha256="ef" * 32, size=1),
        files=files,
    )


def test_pipelines_move_after_the_other_models_in_a_stable_order() -> None:
    ocr = _assignment("ocr", "ocr.pipeline.json")
    vad = _assignment("vad", "VAD.PIPELINE.JSON")
    det = _assignment("det", "det.onnx")
    cls = _assignment("cls", "cls.xml", "cls.bin", "docs/x.pipeline.json")  # not top level
    ordered = pipelines_last([ocr, det, vad, cls])
    assert [a.name for a in ordered] == ["det", "cls", "ocr", "vad"]
