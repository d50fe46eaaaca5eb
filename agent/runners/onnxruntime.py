"""ONNX Runtime runner (CPU execution provider)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort  # guarded by the registry: ImportError skips this plugin

from agent.errors import InferenceError, InvalidInput, ModelLoadError
from agent.runners.base import Runner, check_inputs
from model_store import ModelStoreError
from model_store.onnx_io import external_data_files

logger = logging.getLogger(__name__)

_ORT_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError)
try:  # ORT's own exception classes live in a private module; use them when present
    from onnxruntime.capi import onnxruntime_pybind11_state as _state

    _ORT_ERRORS = (_state.Fail, _state.InvalidArgument, *_ORT_ERRORS)
except (ImportError, AttributeError):  # pragma: no cover - depends on the ORT build
    pass

_LOAD_ERRORS: tuple[type[BaseException], ...] = (*_ORT_ERRORS, OSError)


class OnnxRuntimeRunner(Runner):
    key: ClassVar[str] = "onnxruntime"
    platform: ClassVar[str] = "onnxruntime_onnx"
    providers: ClassVar[tuple[str, ...]] = ("CPUExecutionProvider",)

    def __init__(self) -> None:
        super().__init__()
        self._session: ort.InferenceSession | None = None

    @property
    def backend(self) -> str:
        return "onnxruntime-cpu"

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        self.set_signature(metadata)
        model_path = Path(bundle_dir) / str(metadata.model_file)
        _check_external_data(model_path, Path(bundle_dir))
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=list(self.providers)
            )
        except _LOAD_ERRORS as exc:
            raise ModelLoadError(
                f"onnxruntime cannot load {model_path.name}: {_line(exc)}"
            ) from exc
        declared_in = {s.name for s in self.inputs}
        actual_in = {i.name for i in session.get_inputs()}
        if declared_in != actual_in:
            raise ModelLoadError(
                f"declared inputs {sorted(declared_in)} differ from the model's {sorted(actual_in)}"
            )
        actual_out = {o.name for o in session.get_outputs()}
        missing = sorted({s.name for s in self.outputs} - actual_out)
        if missing:
            raise ModelLoadError(f"declared output {missing[0]!r} is not produced by the model")
        self._session = session
        logger.debug("loaded %s with %s", model_path, session.get_providers())

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise InferenceError("model is not loaded")
        check_inputs(self.inputs, inputs)
        names = [o.name for o in session.get_outputs()]
        try:
            results = session.run(names, dict(inputs))
        except _ORT_ERRORS as exc:
            if type(exc).__name__ == "InvalidArgument":
                raise InvalidInput(_line(exc)) from exc
            raise InferenceError(f"onnxruntime: {_line(exc)}") from exc
        return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}

    def close(self) -> None:
        self._session = None


def _check_external_data(model_path: Path, bundle_dir: Path) -> None:
    """External data must be files of this (verified) bundle: never a path that leaves it,
    whatever the ONNX Runtime version would do with one."""
    try:
        model = onnx.load(str(model_path), load_external_data=False)
        locations = external_data_files(model)
    except ModelStoreError as exc:
        raise ModelLoadError(f"{model_path.name}: {exc}") from exc
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
        raise ModelLoadError(
            f"{model_path.name} is not a readable ONNX model: {_line(exc)}"
        ) from exc
    for location in locations:
        if not (bundle_dir / location).is_file():
            raise ModelLoadError(
                f"{model_path.name}: external data {location!r} is not in the bundle"
            )


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
