"""A generation installs its pipelines after the models they run (``pipelines_last``), and
a restarted agent restores them after those models (``committed_pipelines_last``)."""

from __future__ import annotations

from pathlib import Path

from agent.deployment.journal import PersistedModel
from agent.deployment.pipeline_order import committed_pipelines_last, pipelines_last
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


def test_committed_pipelines_restore_last(tmp_path: Path) -> None:
    def committed(name: str, digest: str, *files: str) -> PersistedModel:
        (tmp_path / digest).mkdir()
        for f in files:
            (tmp_path / digest / f).write_text("{}")
        return PersistedModel(name=name, version="1", bundle_digest=digest, backend="b")

    asr = committed("asr", "a" * 64, "edgefleet.json", "asr.pipeline.json")
    det = committed("det", "b" * 64, "edgefleet.json", "det.onnx")
    gone = PersistedModel(name="gone", version="1", bundle_digest="c" * 64, backend="b")
    ordered = committed_pipelines_last([asr, det, gone], lambda d: tmp_path / d)
    assert [pm.name for pm in ordered] == ["det", "gone", "asr"]
