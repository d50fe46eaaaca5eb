"""Runner plugins configured per candidate: the registry skips missing EPs and broken
plugins, ``supports`` per spec, ORT threads honoured, an ORT session whose EP is not the
one asked for is refused, EP provider options per spec, every loaded plugin serves dynamic
shapes / several inputs / int64 / bool like ONNX Runtime, and ``load_runner(spec=)``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pytest

import agent.runners as runners
from agent.deployment.loading import load_runner
from agent.errors import ModelLoadError, RunnerUnavailable
from agent.runners import CandidateSpec, create_runner, create_runner_for
from agent.runners.ort_providers import (
    CPU_EP,
    CUDA_EP,
    OPENVINO_EP,
    TENSORRT_EP,
    Providers,
    cpu_reason,
    cuda_providers,
    cuda_reason,
    openvino_ep_providers,
    openvino_ep_reason,
    tensorrt_providers,
    tensorrt_reason,
)
from agent.runners.ort_session import OrtRunner
from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.runners.plugins.openvino import OpenVinoRunner
from model_store import build_bundle, load_metadata
from tests.support.onnx_models import affine_model, bool_input_model, two_input_model

CPU_F32 = CandidateSpec("onnxruntime", CPU_EP, "f32")
EP_PLUGINS = {"ort_cuda": CUDA_EP, "ort_tensorrt": TENSORRT_EP, "ort_openvino": OPENVINO_EP}


def _bundle(tmp_path: Path, build: Any, name: str, **kwargs: Any) -> tuple[Path, Path, Any]:
    model = build(tmp_path / "src" / "model.onnx")
    out = tmp_path / "bundle"
    build_bundle(model, out, name=name, version="1", **kwargs)
    return model, out, load_metadata(out)


def _direct(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("module", sorted(EP_PLUGINS))
def test_ep_plugins_load_only_where_onnxruntime_has_their_ep(module: str) -> None:
    provider = EP_PLUGINS[module]
    if provider in ort.get_available_providers():  # a GPU / OpenVINO-EP host
        assert module in runners.available_runners()
    else:  # this box: only the CPU EP
        assert module not in runners.available_runners()
        assert (
            runners.skipped_plugins()[module] == f"onnxruntime {ort.__version__} has no {provider}"
        )
    assert "onnxruntime" in runners.available_runners()


def test_a_broken_plugin_is_skipped_and_the_others_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('driver exploded')\n")
    (plugins / "no_ep.py").write_text("raise ImportError('onnxruntime has no FancyEP')\n")
    monkeypatch.setattr(runners.plugins, "__path__", [*runners.plugins.__path__, str(plugins)])
    monkeypatch.setattr(runners, "_discovered", False)
    monkeypatch.setattr(runners, "_SKIPPED", {})
    for name in ("broken", "no_ep"):
        monkeypatch.delitem(sys.modules, f"agent.runners.plugins.{name}", raising=False)
    with caplog.at_level(logging.INFO, logger="agent.runners"):
        available = runners.available_runners()
    assert {"onnxruntime", "openvino"} <= set(available)
    skipped = runners.skipped_plugins()
    assert skipped["broken"] == "RuntimeError: driver exploded"
    assert skipped["no_ep"] == "onnxruntime has no FancyEP"
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["runner plugin broken is broken, skipped: driver exploded"] == logging.WARNING
    assert levels["runner plugin no_ep skipped: onnxruntime has no FancyEP"] == logging.INFO
    assert isinstance(create_runner_for(CPU_F32), OnnxRuntimeRunner)


def test_ort_cpu_supports_f32_on_the_cpu_ep_only() -> None:
    assert OnnxRuntimeRunner.supports(CPU_F32)
    assert OnnxRuntimeRunner.supports(CandidateSpec("onnxruntime", CPU_EP, "f32", threads=2))
    refused = {
        CandidateSpec("onnxruntime", CPU_EP, "bf16"): "precision 'bf16' is not one of ['f32']",
        CandidateSpec("onnxruntime", CPU_EP, "f32", threads=-1): "threads must not be negative",
        CandidateSpec("openvino", "CPU", "f32"): "runtime 'openvino' is not 'onnxruntime'",
        CandidateSpec("onnxruntime", CUDA_EP, "f32"): "is not the CPUExecutionProvider",
        CandidateSpec("onnxruntime", f"{CPU_EP}:1", "f32"): "the CPU EP takes no qualifier",
    }
    for spec, reason in refused.items():
        assert not OnnxRuntimeRunner.supports(spec)
        assert reason in (OnnxRuntimeRunner.unsupported_reason(spec) or ""), spec
    with pytest.raises(RunnerUnavailable, match="'onnxruntime' cannot run onnxruntime:"):
        OnnxRuntimeRunner(CandidateSpec("onnxruntime", CPU_EP, "int8"))


def test_create_runner_for_picks_the_plugin_of_the_spec() -> None:
    cpu = create_runner_for(CPU_F32)
    assert isinstance(cpu, OnnxRuntimeRunner) and cpu.backend == CPU_F32.key
    assert cpu.backend == "onnxruntime:CPUExecutionProvider:f32"
    ov = create_runner(spec=CandidateSpec("openvino", "CPU", "f32", threads=1))
    assert isinstance(ov, OpenVinoRunner) and ov.spec.threads == 1
    assert create_runner().backend == CPU_F32.key  # existing callers: unchanged
    assert create_runner("openvino").backend == "openvino:CPU:f32"
    if CUDA_EP not in ort.get_available_providers():
        with pytest.raises(RunnerUnavailable) as info:
            create_runner_for(CandidateSpec("onnxruntime", CUDA_EP, "f32"))
        message = str(info.value)
        assert message.startswith("no runner can run onnxruntime:CUDAExecutionProvider:f32 (")
        assert "ort_cuda: not loaded" in message and "\n" not in message
    with pytest.raises(RunnerUnavailable, match="cannot run onnxruntime:CPUExecutionProvider:f16"):
        create_runner("onnxruntime", CandidateSpec("onnxruntime", CPU_EP, "f16"))


def test_ort_threads_and_optimizations_reach_the_session(tmp_path: Path) -> None:
    model, bundle, meta = _bundle(tmp_path, two_input_model, "two")
    feeds = {"x": np.ones((2, 4), np.float32), "ids": np.array([3, -4])}
    for threads in (1, 2):
        runner = OnnxRuntimeRunner(CandidateSpec("onnxruntime", CPU_EP, "f32", threads=threads))
        runner.load(bundle, meta)
        options = runner.session.get_session_options()
        assert options.intra_op_num_threads == threads
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert runner.session.get_providers() == [CPU_EP]
        for name, want in _direct(model, feeds).items():
            np.testing.assert_array_equal(runner.infer(feeds)[name], want)
    for spec in (None, CandidateSpec("onnxruntime", CPU_EP, "f32", threads=0)):
        default = OnnxRuntimeRunner(spec)
        default.load(bundle, meta)
        assert default.session.get_session_options().intra_op_num_threads == 0  # ORT decides


class _AskedCpuListedCuda(OrtRunner):
    """Asks for CUDA but hands ORT a CPU-only provider list: what a silent fallback
    looks like from outside."""

    provider: ClassVar[str] = CUDA_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec("onnxruntime", CUDA_EP, "f32")

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return [(CPU_EP, {})]


class _AskedCudaOnACpuHost(OrtRunner):
    """Asks ORT for CUDA where this ORT build has none: ORT creates a CPU session anyway."""

    provider: ClassVar[str] = CUDA_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec("onnxruntime", CUDA_EP, "f32")

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return cuda_providers(spec)


def test_a_session_not_on_the_requested_ep_is_refused(tmp_path: Path) -> None:
    _, bundle, meta = _bundle(tmp_path, affine_model, "affine")
    with pytest.raises(ModelLoadError, match=r"on \['CPUExecutionProvider'\], not CUDA") as info:
        _AskedCpuListedCuda().load(bundle, meta)
    assert str(info.value).endswith("refusing a silent fallback")
    if CUDA_EP in ort.get_available_providers():
        return
    runner = _AskedCudaOnACpuHost()
    with (
        pytest.warns(UserWarning, match="not in available provider names"),
        pytest.raises(ModelLoadError, match="refusing a silent fallback"),
    ):
        runner.load(bundle, meta)
    assert runner.session is None


def test_ep_availability_and_precision_rules() -> None:
    cpu_only = [CPU_EP]
    gpu_host = [TENSORRT_EP, CUDA_EP, CPU_EP]
    cuda = CandidateSpec("onnxruntime", CUDA_EP, "f32")
    assert cuda_reason(cuda, cpu_only) == (
        "CUDAExecutionProvider is not available (onnxruntime has ['CPUExecutionProvider'])"
    )
    assert cuda_reason(cuda, gpu_host) is None
    assert cuda_reason(CandidateSpec("onnxruntime", f"{CUDA_EP}:2", "f32"), gpu_host) is None
    assert "GPU id 'x' is not a number" in (
        cuda_reason(CandidateSpec("onnxruntime", f"{CUDA_EP}:x", "f32"), gpu_host) or ""
    )
    assert "precision 'f16'" in (
        cuda_reason(CandidateSpec("onnxruntime", CUDA_EP, "f16"), gpu_host) or ""
    )
    for precision in ("f32", "f16"):
        assert (
            tensorrt_reason(CandidateSpec("onnxruntime", TENSORRT_EP, precision), gpu_host) is None
        )
    assert tensorrt_reason(CandidateSpec("onnxruntime", TENSORRT_EP, "int8"), gpu_host)
    assert tensorrt_reason(CandidateSpec("onnxruntime", TENSORRT_EP, "f16"), [CUDA_EP, CPU_EP])
    assert cpu_reason(CPU_F32, cpu_only) is None


def test_cuda_and_tensorrt_provider_options_per_spec() -> None:
    assert cuda_providers(CandidateSpec("onnxruntime", CUDA_EP, "f32")) == [
        (CUDA_EP, {"device_id": "0"})
    ]
    assert cuda_providers(CandidateSpec("onnxruntime", f"{CUDA_EP}:1", "f32")) == [
        (CUDA_EP, {"device_id": "1"})
    ]
    f16 = CandidateSpec("onnxruntime", f"{TENSORRT_EP}:1", "f16")
    assert tensorrt_providers(f16, [TENSORRT_EP, CUDA_EP, CPU_EP]) == [
        (TENSORRT_EP, {"device_id": "1", "trt_fp16_enable": "True"}),
        (CUDA_EP, {"device_id": "1"}),  # for the nodes TensorRT cannot take
    ]
    f32 = CandidateSpec("onnxruntime", TENSORRT_EP, "f32")
    assert tensorrt_providers(f32, [TENSORRT_EP, CPU_EP]) == [
        (TENSORRT_EP, {"device_id": "0", "trt_fp16_enable": "False"})
    ]


def test_openvino_ep_provider_options_and_rules_per_spec() -> None:
    available = [OPENVINO_EP, CPU_EP]

    def spec(device: str, precision: str, threads: int | None = None) -> CandidateSpec:
        return CandidateSpec("onnxruntime", device, precision, threads=threads)

    assert openvino_ep_providers(spec(OPENVINO_EP, "f32", threads=2)) == [
        (OPENVINO_EP, {"device_type": "CPU", "precision": "FP32", "num_of_threads": "2"})
    ]
    assert openvino_ep_providers(spec(f"{OPENVINO_EP}:GPU.1", "f16", threads=2)) == [
        (OPENVINO_EP, {"device_type": "GPU.1", "precision": "FP16"})  # threads: CPU only
    ]
    assert openvino_ep_providers(spec(f"{OPENVINO_EP}:NPU", "f16")) == [
        (OPENVINO_EP, {"device_type": "NPU", "precision": "FP16"})
    ]
    ok = [
        (f"{OPENVINO_EP}:CPU", "f32"),
        (f"{OPENVINO_EP}:GPU", "f16"),
        (f"{OPENVINO_EP}:NPU", "f16"),
    ]
    for device, precision in ok:
        assert openvino_ep_reason(spec(device, precision), available) is None
    refused = {
        (OPENVINO_EP, "f16"): "runs CPU at f32 only",
        (f"{OPENVINO_EP}:NPU", "f32"): "runs NPU at f16 only",
        (f"{OPENVINO_EP}:GPU", "bf16"): "precision 'bf16' is not one of ['f16', 'f32']",
        (f"{OPENVINO_EP}:GPU", "int8"): "precision 'int8'",
        (f"{OPENVINO_EP}:XPU", "f32"): "OpenVINO device 'XPU' is not one of",
    }
    for (device, precision), reason in refused.items():
        assert reason in (openvino_ep_reason(spec(device, precision), available) or "")
    gpu = spec(f"{OPENVINO_EP}:GPU.1", "f16")
    assert openvino_ep_reason(gpu, available, devices=["CPU", "GPU.0", "GPU.1"]) is None
    assert "'GPU.1' is not present" in (openvino_ep_reason(gpu, available, ["CPU"]) or "")
    assert "is not available" in (openvino_ep_reason(gpu, [CPU_EP]) or "")


def _plugin_specs() -> list[CandidateSpec]:
    """Each loaded plugin's default candidate, plus OpenVINO bf16 where this CPU has it."""
    specs = [cls.own_default_spec() for cls in runners.available_runners().values()]
    bf16 = CandidateSpec("openvino", "CPU", "bf16")
    return specs + ([bf16] if OpenVinoRunner.supports(bf16) else [])


@pytest.mark.parametrize("build", [two_input_model, bool_input_model, affine_model])
def test_every_plugin_serves_dynamic_shapes_several_inputs_int64_and_bool(
    tmp_path: Path, build: Any
) -> None:
    model, bundle, meta = _bundle(tmp_path, build, "m")
    rng = np.random.default_rng(5)
    for spec in _plugin_specs():
        runner = create_runner_for(spec)
        runner.load(bundle, meta)
        for batch in (1, 3, 8):
            feeds: dict[str, np.ndarray] = {}
            for sig in runner.inputs:
                shape = tuple(batch if d is None else d for d in sig.shape or (batch,))
                if sig.dtype == np.bool_:
                    feeds[sig.name] = rng.random(shape) > 0.5
                elif sig.dtype.kind == "i":
                    feeds[sig.name] = rng.integers(-9, 9, size=shape).astype(sig.dtype)
                else:
                    feeds[sig.name] = rng.standard_normal(shape).astype(sig.dtype)
            got = runner.infer(feeds)
            for name, want in _direct(model, feeds).items():
                assert got[name].dtype == want.dtype and got[name].shape == want.shape, spec
                tolerance = 1e-5 if spec.precision == "f32" else 0.01 * float(np.abs(want).max())
                np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=tolerance)
        runner.close()


def test_load_runner_creates_the_candidate_it_is_given(tmp_path: Path) -> None:
    _, bundle, _ = _bundle(tmp_path / "a", two_input_model, "two")
    default = load_runner(bundle, expected_name="two", expected_version="1")
    assert default.backend == "onnxruntime:CPUExecutionProvider:f32"
    ov = CandidateSpec("openvino", "CPU", "f32", threads=1)
    runner = load_runner(bundle, expected_name="two", expected_version="1", spec=ov)
    assert isinstance(runner, OpenVinoRunner) and runner.spec == ov
    assert runner.compiled_property("INFERENCE_NUM_THREADS") == "1"
    _, pinned, _ = _bundle(
        tmp_path / "b", two_input_model, "two", constraints={"runtimes": ["openvino"]}
    )
    with pytest.raises(
        RunnerUnavailable, match=r"cannot serve this bundle \(it runs on openvino\)"
    ):
        load_runner(pinned, expected_name="two", expected_version="1", spec=CPU_F32)
    with pytest.raises(RunnerUnavailable, match="no runner can run openvino:NO_SUCH_DEVICE:f32"):
        load_runner(
            bundle,
            expected_name="two",
            expected_version="1",
            spec=CandidateSpec("openvino", "NO_SUCH_DEVICE", "f32"),
        )


def test_every_catalogue_candidate_this_host_supports_gets_its_runner() -> None:
    """The hw_profiles catalogue and the plugins agree on runtime / device / precision
    names: each candidate is either refused with a reason or created as that candidate."""
    from hw_profiles import load_catalogue

    created: set[str] = set()
    for profile in load_catalogue():
        for spec in profile.candidates:
            try:
                runner = create_runner_for(spec)
            except RunnerUnavailable as exc:
                assert str(exc).startswith(f"no runner can run {spec.key} (")
                continue
            assert runner.spec == spec and runner.backend == spec.key
            created.add(spec.key)
    assert "onnxruntime:CPUExecutionProvider:f32" in created
    assert "openvino:CPU:f32" in created


def test_a_helper_module_beside_the_plugins_is_never_loaded_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "a_new_helper.py").write_text("raise RuntimeError('imported as a plugin')\n")
    monkeypatch.setattr(runners, "__path__", [*runners.__path__, str(helpers)])
    monkeypatch.setattr(runners, "_discovered", False)
    monkeypatch.setattr(runners, "_SKIPPED", {})
    monkeypatch.delitem(sys.modules, "agent.runners.a_new_helper", raising=False)
    assert "onnxruntime" in runners.available_runners()
    assert "a_new_helper" not in runners.skipped_plugins()
    assert "agent.runners.a_new_helper" not in sys.modules
