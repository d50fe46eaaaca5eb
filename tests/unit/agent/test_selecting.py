"""Backend selection in a child process (``agent.deployment.selecting``): when a child is
due (not for a pin, a cached result, a single candidate or a plain ``Selector``), the
selector's setup survives JSON, and the child's failure is the same one-line error here."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.deployment import selecting
from agent.deployment.selecting import Request, error_class, needs_child, select_backend
from agent.errors import AgentError, ModelLoadError, RunnerUnavailable
from agent.selection import Measurement, SelectionSettings
from agent.selection.cache import SelectionCache, cache_key
from agent.selection.setup import PortableSelector, SelectorSetup
from tests.support.selection import ORT, OV, OV_BF16, selector_for

DIGEST = "d" * 64


def _setup(tmp_path: Path, *specs: object) -> SelectorSetup:
    return SelectorSetup(
        profile="test",
        candidates=tuple(specs),  # type: ignore[arg-type]
        fingerprint="fp",
        runtimes={"onnxruntime": "1", "openvino": "2"},
        data_dir=tmp_path / "data",
        settings=SelectionSettings(budget_s=1.0, cpu_share=0.4, tolerance=0.02),
    )


def _request(bundle: Path, *runtimes: str) -> Request:
    return Request(bundle, "det", "1", DIGEST, runtimes or ("onnxruntime", "openvino"))


def test_a_child_measures_only_when_a_measurement_is_due(tmp_path: Path) -> None:
    setup = _setup(tmp_path, ORT, OV)
    selector = setup.build()
    assert isinstance(selector, PortableSelector) and selector.setup is setup
    request = _request(tmp_path / "bundle")
    assert needs_child(selector, request, pin=None)
    assert not needs_child(selector, request, pin=ORT.key)  # a pin loads that one
    assert not needs_child(selector, _request(tmp_path, "onnxruntime"), pin=None)  # one left
    assert not needs_child(setup.build(portable=False), request, pin=None)  # measured here
    SelectionCache(setup.data_dir).put(
        cache_key(DIGEST, "fp", setup.runtimes), OV.key, [Measurement(OV.key, p50_ms=1.0)]
    )
    assert setup.cached_choice(DIGEST, [ORT.key, OV.key]) == OV.key
    assert not needs_child(selector, request, pin=None)  # the cache answers
    assert setup.cached_choice(DIGEST, [ORT.key]) is None  # a choice no longer allowed


def test_the_setup_survives_json(tmp_path: Path) -> None:
    setup = _setup(tmp_path, ORT, OV, OV_BF16)
    assert SelectorSetup.from_json(setup.to_json()) == setup
    request = Request(tmp_path, "det", "1", DIGEST, ("openvino",), tolerance=0.1, threads=2)
    assert Request.from_json(request.to_json()) == request


def test_error_classes_cross_the_process_boundary_by_name() -> None:
    assert error_class("ModelLoadError") is ModelLoadError
    assert error_class("RunnerUnavailable") is RunnerUnavailable
    assert error_class("ValueError") is AgentError  # not one of ours
    assert error_class("no such class") is AgentError


def test_a_failed_selection_in_the_child_fails_here_in_one_line(tmp_path: Path) -> None:
    """No bundle: every candidate fails to load in the child; its RunnerUnavailable is
    raised here with the child's reason, and nothing was loaded in this process."""
    selector = _setup(tmp_path, ORT, OV).build()
    loads: list[object] = []
    with pytest.raises(RunnerUnavailable) as info:
        select_backend(
            selector,
            _request(tmp_path / "missing"),
            load=lambda spec: loads.append(spec),  # type: ignore[func-returns-value]
            inputs_for=lambda runner: {},
            pin=None,
        )
    message = str(info.value)
    assert message.startswith("no backend can serve the model: ") and "\n" not in message
    assert "edgefleet.json is missing" in message
    assert loads == []


def test_a_plain_selector_still_measures_in_this_process(tmp_path: Path) -> None:
    """Tests and the simulator hand in a plain Selector: select_backend is its select."""
    selector = selector_for(tmp_path, ORT)
    loads: list[str] = []

    def load(spec: object) -> object:
        loads.append(getattr(spec, "key", ""))
        raise ModelLoadError("not a real bundle")

    with pytest.raises(ModelLoadError, match="not a real bundle"):
        select_backend(selector, _request(tmp_path), load=load, inputs_for=lambda r: {}, pin=None)  # type: ignore[arg-type]
    assert loads == [ORT.key]


def test_a_child_that_writes_undecodable_bytes_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime may log bytes that are not UTF-8: that is the child's failure, reported
    in one line, not a UnicodeDecodeError here."""
    (tmp_path / "latin_child.py").write_bytes(
        b"import sys\nsys.stdin.read()\nsys.stderr.buffer.write(b'caf\\xe9 failed\\n')\n"
        b"sys.exit(3)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(selecting, "CHILD_MODULE", "latin_child")
    selector = _setup(tmp_path, ORT, OV).build()
    assert isinstance(selector, PortableSelector)
    with pytest.raises(AgentError, match=r"failed \(exit 3\): caf. failed$"):
        selecting.run_child(selector, _request(tmp_path))
