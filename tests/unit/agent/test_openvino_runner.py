"""OpenVINO runner: IR and ONNX bundles give onnxruntime's outputs; runner choice; errors;
explicit precision (f32 equals ORT, bf16 close but not equal on this CPU), threads, int8."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import agent.runners as runners
from agent.errors import InferenceError, InvalidInput, ModelLoadError, RunnerUnavailable
from agent.runners.choice import candidate_runners, runner_for
from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.runners.plugins.openvino import OpenVinoRunner, compile_config
from agent.runners.spec import CandidateSpec
from agent.runners.warmup import warm_up
from model_store import build_bundle, load_metadata
from model_store.metadata import BundleMetadata
from tests.support.onnx_models import bool_input_model, external_data_model
from tests.support.openvino_models import ir_from_onnx, two_input_ir
from tests.support.paths import REPO


def _ort(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _ir_runner(tmp_path: Path) -> tuple[OpenVinoRunner, Path, BundleMetadata]:
    xml, onnx_path = two_input_ir(tmp_path / "src" / "model.xml", weight=0.37)
    build_bundle(xml, tmp_path / "bundle", name="two", version="1")
    meta = load_metadata(tmp_path / "bundle")
    runner = OpenVinoRunner()
    runner.load(tmp_path / "bundle", meta)
    return runner, onnx_path, meta


def _feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((batch, 4)).astype(np.float32),
        "ids": rng.integers(-50, 50, size=batch, dtype=np.int64),
    }


def _assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype, name
        assert got[name].shape == expected.shape, name
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_ir_outputs_equal_onnxruntime_on_the_source_onnx(tmp_path: Path, batch: int) -> None:
    runner, onnx_path, _ = _ir_runner(tmp_path)
    feeds = _feeds(batch, seed=batch)
    _assert_close(runner.infer(feeds), _ort(onnx_path, feeds))


def test_compiled_for_cpu_in_f32_with_a_latency_hint(tmp_path: Path) -> None:
    runner, _, _ = _ir_runner(tmp_path)
    assert runner.spec == CandidateSpec("openvino", "CPU", "f32")
    assert compile_config(runner.spec) == {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": "NO",
    }
    assert runner.inference_precision == "f32"
    assert runner.compiled_property("PERFORMANCE_HINT").endswith("LATENCY")
    assert (runner.key, runner.backend, runner.platform) == (
        "openvino",
        "openvino:CPU:f32",
        "openvino",
    )
    runner.close()
    assert runner.inference_precision == ""


def test_onnx_bundle_with_external_data_runs_on_both_runners(tmp_path: Path) -> None:
    model = external_data_model(tmp_path / "src" / "m.onnx", location="data/m.data")
    build_bundle(model, tmp_path / "bundle", name="m", version="1")
    meta = load_metadata(tmp_path / "bundle")
    feeds = _feeds(5)
    want = _ort(model, feeds)
    for runner in (OpenVinoRunner(), OnnxRuntimeRunner()):
        runner.load(tmp_path / "bundle", meta)
        _assert_close(runner.infer(feeds), want)


def test_bool_ir_matches_onnxruntime(tmp_path: Path) -> None:
    onnx_path = bool_input_model(tmp_path / "onnx" / "masked.onnx")
    xml = ir_from_onnx(onnx_path, tmp_path / "src" / "masked.xml")
    build_bundle(xml, tmp_path / "bundle", name="masked", version="1")
    runner = OpenVinoRunner()
    runner.load(tmp_path / "bundle", load_metadata(tmp_path / "bundle"))
    feeds = {
        "x": np.arange(6, dtype=np.float32).reshape(3, 2),
        "mask": np.array([[True, False], [False, True], [True, True]]),
    }
    _assert_close(runner.infer(feeds), _ort(onnx_path, feeds))
    assert warm_up(runner, iterations=2) >= 0


def test_concurrent_calls_each_get_their_own_result(tmp_path: Path) -> None:
    runner, onnx_path, _ = _ir_runner(tmp_path)
    cases = [_feeds(1 + i % 5, seed=i) for i in range(48)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(runner.infer, cases))
    for feeds, got in zip(cases, results, strict=True):
        _assert_close(got, _ort(onnx_path, feeds))


_FIRST_INFERENCES = """
import sys, threading
from pathlib import Path
import numpy as np
from agent.runners.plugins.openvino import OpenVinoRunner
from model_store import build_bundle, load_metadata
from tests.support.onnx_models import affine_model
work = Path(sys.argv[1])
affine_model(work / "src" / "m.onnx")
build_bundle(work / "src" / "m.onnx", work / "b", name="m", version="1")
meta = load_metadata(work / "b")
runners = []
for _ in range(8):
    runner = OpenVinoRunner()
    runner.load(work / "b", meta)
    runners.append(runner)
barrier = threading.Barrier(len(runners))
def first(runner):
    barrier.wait()
    runner.infer({"x": np.ones((1, 4), np.float32)})
threads = [threading.Thread(target=first, args=(r,), daemon=True) for r in runners]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok")
"""


@pytest.mark.parametrize("attempt", range(3))
def test_first_inferences_of_a_process_made_together_do_not_deadlock(
    tmp_path: Path, attempt: int
) -> None:
    # pyopenvino's first tensor conversion in a process could deadlock two threads (a
    # static's guard against the GIL): 20 simulated agents hung measuring OpenVINO at once.
    # Without the fix about 1 run in 3 hangs; a fresh interpreter each time.
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_INFERENCES, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_bad_inputs_and_backend_failures(tmp_path: Path) -> None:
    runner, _, _ = _ir_runner(tmp_path)
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(InvalidInput, match="dtype int32"):
        runner.infer({"x": x, "ids": np.zeros(2, np.int32)})
    with pytest.raises(InvalidInput, match="missing input 'ids'"):
        runner.infer({"x": x})
    with pytest.raises(InvalidInput, match="shape"):
        runner.infer({"x": np.zeros((2, 5), np.float32), "ids": np.zeros(2, np.int64)})
    with pytest.raises(InferenceError, match=r"^openvino: ") as info:  # batch 2 vs batch 3
        runner.infer({"x": x, "ids": np.zeros(3, np.int64)})
    assert "\n" not in str(info.value)
    runner.close()
    runner.close()
    with pytest.raises(InferenceError, match="not loaded"):
        runner.infer(_feeds(1))


def test_metadata_that_lies_or_a_broken_model_is_a_load_error(tmp_path: Path) -> None:
    _, _, meta = _ir_runner(tmp_path)
    bundle = tmp_path / "bundle"
    with pytest.raises(ModelLoadError, match="declared inputs"):
        OpenVinoRunner().load(bundle, meta.model_copy(update={"inputs": meta.inputs[:1]}))
    renamed = meta.outputs[0].model_copy(update={"name": "zz"})
    with pytest.raises(ModelLoadError, match="declared output 'zz'"):
        OpenVinoRunner().load(bundle, meta.model_copy(update={"outputs": [renamed]}))
    (bundle / "model.bin").write_bytes(b"\0" * 4)
    with pytest.raises(
        ModelLoadError, match=r"^openvino cannot load model\.xml on openvino:CPU:f32: "
    ) as info:
        OpenVinoRunner().load(bundle, meta)
    assert "\n" not in str(info.value)


def _meta(framework: str, runtimes: list[str] | None = None) -> BundleMetadata:
    model_file = "m.xml" if framework == "openvino" else "m.onnx"
    constraints: dict[str, Any] | None = None if runtimes is None else {"runtimes": runtimes}
    return BundleMetadata(
        name="m",
        version="1",
        framework=framework,
        model_file=model_file,
        inputs=[],
        outputs=[],
        constraints=constraints,  # type: ignore[arg-type]
    )


def test_runner_for_follows_framework_and_constraints() -> None:
    both = ["onnxruntime", "openvino"]
    assert runner_for(_meta("onnx"), both) == "onnxruntime"
    assert runner_for(_meta("onnx"), ["openvino"]) == "openvino"
    assert runner_for(_meta("openvino"), both) == "openvino"
    assert runner_for(_meta("onnx", ["openvino"]), both) == "openvino"
    assert candidate_runners(_meta("openvino", ["onnxruntime"])) == ()
    with pytest.raises(RunnerUnavailable, match="needs runtime 'openvino'"):
        runner_for(_meta("openvino"), ["onnxruntime"])
    with pytest.raises(RunnerUnavailable, match="framework 'tflite' is not supported"):
        runner_for(_meta("tflite"), both)
    assert runner_for(_meta("openvino")) == "openvino"  # the plugins that loaded here


def test_registry_lists_openvino_and_survives_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "openvino" in runners.available_runners()
    assert isinstance(runners.create_runner("openvino"), OpenVinoRunner)
    monkeypatch.setattr(runners, "_discovered", False)
    monkeypatch.setattr(runners, "_REGISTRY", {})
    monkeypatch.setattr(runners, "_SKIPPED", {})
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.delitem(sys.modules, "agent.runners.plugins.openvino")
    monkeypatch.delitem(sys.modules, "agent.runners.plugins.onnxruntime")
    available = runners.available_runners()
    assert "onnxruntime" in available and "openvino" not in available
    assert "openvino" in runners.skipped_plugins()


def _dense_model(path: Path, *, quantized: bool = False) -> Path:
    """y = x @ W + b, x float32 [batch, 64], W random [64, 32]: enough arithmetic for bf16
    to show. ``quantized``: the same with QuantizeLinear/DequantizeLinear on x and int8 W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    b = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])
    if quantized:
        scale = numpy_helper.from_array(np.array(0.05, np.float32), "s")
        zero = numpy_helper.from_array(np.array(0, np.int8), "z")
        wq = np.clip(np.round(w / 0.05), -127, 127).astype(np.int8)
        init = [scale, zero, numpy_helper.from_array(wq, "Wq"), b]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
            helper.make_node("DequantizeLinear", ["Wq", "s", "z"], ["W"]),
            helper.make_node("MatMul", ["xd", "W"], ["xw"]),
        ]
    else:
        init = [numpy_helper.from_array(w, "W"), b]
        nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"])]
    nodes.append(helper.make_node("Add", ["xw", "b"], ["y"]))
    graph = helper.make_graph(nodes, "dense", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _dense_bundle(tmp_path: Path, *, quantized: bool = False) -> tuple[Path, Path, Any]:
    model = _dense_model(tmp_path / "src" / "dense.onnx", quantized=quantized)
    build_bundle(model, tmp_path / "bundle", name="dense", version="1")
    return model, tmp_path / "bundle", load_metadata(tmp_path / "bundle")


def _dense_feeds() -> dict[str, np.ndarray]:
    return {"x": np.ones((1, 64), np.float32)}


def _cpu(precision: str, threads: int | None = None) -> CandidateSpec:
    return CandidateSpec("openvino", "CPU", precision, threads=threads)


def test_bf16_on_this_cpu_runs_close_to_but_not_equal_to_f32(tmp_path: Path) -> None:
    if not OpenVinoRunner.supports(_cpu("bf16")):
        pytest.skip("this CPU has no BF16 capability")  # the dev box (AMX) has it
    model, bundle, meta = _dense_bundle(tmp_path)
    feeds = {"x": np.random.default_rng(3).standard_normal((5, 64)).astype(np.float32)}
    reference = _ort(model, feeds)["y"]
    outputs = {}
    for precision in ("f32", "bf16"):
        runner = OpenVinoRunner(_cpu(precision))
        runner.load(bundle, meta)
        assert runner.inference_precision == precision
        assert runner.backend == f"openvino:CPU:{precision}"
        outputs[precision] = runner.infer(feeds)["y"]
        assert outputs[precision].dtype == np.float32  # bf16 inside, f32 at the edges
    np.testing.assert_allclose(outputs["f32"], reference, rtol=1e-5, atol=1e-5)
    drift = float(np.abs(outputs["bf16"] - reference).max())
    assert 0 < drift <= 0.01 * float(np.abs(reference).max())


def test_threads_become_inference_num_threads_on_cpu(tmp_path: Path) -> None:
    _, bundle, meta = _dense_bundle(tmp_path)
    runner = OpenVinoRunner(_cpu("f32", threads=1))
    runner.load(bundle, meta)
    assert runner.compiled_property("INFERENCE_NUM_THREADS") == "1"
    assert "INFERENCE_NUM_THREADS" not in compile_config(_cpu("f32", threads=0))  # OV decides
    assert compile_config(CandidateSpec("openvino", "GPU.1", "f16", threads=4)) == {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f16",
    }  # threads apply to the CPU device only
    assert compile_config(CandidateSpec("openvino", "CPU", "bf16", "THROUGHPUT", 2)) == {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": "bf16",
        "ENABLE_CPU_PINNING": "NO",
        "INFERENCE_NUM_THREADS": "2",
    }


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="thread affinity needs Linux and 2 cores",
)
@pytest.mark.parametrize(
    "first", ["import onnxruntime", "pass"], ids=["onnxruntime-imported", "openvino-only"]
)
def test_openvino_leaves_the_calling_thread_on_its_cores_and_loads_on_the_loaders(
    tmp_path: Path, first: str
) -> None:
    # In a fresh process: OpenVINO's thread pool (TBB's) is the process's, and a worker
    # an earlier unconfined load started may start the next ones where it runs itself
    # (seen: one new thread on every core after another test's load in this process).
    # What the process imported first matters too (``first``): without onnxruntime,
    # OpenVINO left the calling thread on the load's cores (``_run_request`` restores them).
    _, bundle, _ = _dense_bundle(tmp_path)  # built here: the script loads it
    script = f"""
{first}
import os
import numpy as np
from pathlib import Path
from agent.runners.plugins.openvino import OpenVinoRunner
from agent.runners.spec import CandidateSpec
from agent.serving.placement import confined
from model_store import load_metadata

import sys
import threading
assert ("onnxruntime" in sys.modules) == ({first!r} != "pass"), "the variant is not what it says"
bundle = Path({str(bundle)!r})
feeds = {{"x": np.ones((1, 64), np.float32)}}
every = os.sched_getaffinity(0)
core = max(every)
runner = OpenVinoRunner(CandidateSpec("openvino", "CPU", "f32", threads=2))
before = set(os.listdir("/proc/self/task"))
with confined({{core}}):  # as the agent loads a model confined to its fair share
    runner.load(bundle, load_metadata(bundle))
    runner.infer(feeds)
started = set(os.listdir("/proc/self/task")) - before
assert started and all(os.sched_getaffinity(int(t)) == {{core}} for t in started), started
assert runner.compiled_property("ENABLE_CPU_PINNING") in ("False", "NO")
runner.infer(feeds)  # a call from an unconfined thread leaves it so
assert os.sched_getaffinity(0) == every
seen = []
later = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
later.start(); later.join()
assert seen == [every], seen  # and so are the threads it starts
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_int8_runs_a_quantized_model_and_refuses_a_float_one(tmp_path: Path) -> None:
    if not OpenVinoRunner.supports(_cpu("int8")):
        pytest.skip("this CPU has no INT8 capability")
    _, bundle, meta = _dense_bundle(tmp_path / "float")
    with pytest.raises(ModelLoadError, match="not quantized: int8 needs a quantized model"):
        OpenVinoRunner(_cpu("int8")).load(bundle, meta)
    model, bundle, meta = _dense_bundle(tmp_path / "q", quantized=True)
    runner = OpenVinoRunner(_cpu("int8"))
    runner.load(bundle, meta)
    assert runner.backend == "openvino:CPU:int8" and runner.inference_precision == "f32"
    feeds = {"x": np.random.default_rng(4).standard_normal((2, 64)).astype(np.float32)}
    reference = _ort(model, feeds)["y"]  # ORT runs the same QDQ model
    np.testing.assert_allclose(
        runner.infer(feeds)["y"], reference, atol=0.01 * float(np.abs(reference).max())
    )


def test_supports_checks_device_precision_and_hint() -> None:
    assert OpenVinoRunner.supports(_cpu("f32"))
    assert OpenVinoRunner.supports(CandidateSpec("openvino", "CPU", "f32", "THROUGHPUT", 2))
    assert not OpenVinoRunner.supports(CandidateSpec("openvino", "CPU", "f32", "FASTEST"))
    assert not OpenVinoRunner.supports(CandidateSpec("openvino", "CPU", "fp64"))
    assert not OpenVinoRunner.supports(CandidateSpec("openvino", "CPU", "f32", threads=-2))
    assert OpenVinoRunner.supports(CandidateSpec("openvino", "CPU", "f32", threads=0))
    assert not OpenVinoRunner.supports(CandidateSpec("onnxruntime", "CPU", "f32"))
    assert not OpenVinoRunner.supports(CandidateSpec("openvino", "NO_SUCH_DEVICE", "f32"))
    with pytest.raises(RunnerUnavailable, match=r"cannot run openvino:NO_SUCH_DEVICE:f32: "):
        OpenVinoRunner(CandidateSpec("openvino", "NO_SUCH_DEVICE", "f32"))


def test_unsupported_reason_over_recorded_devices() -> None:
    """The pure check, over device lists and capabilities of hosts this box is not."""
    from agent.runners.plugins.openvino import unsupported_reason_for

    caps = {
        "CPU": {"FP32", "INT8", "BIN", "EXPORT_IMPORT"},  # an AVX2 CPU: no BF16
        "GPU.0": {"FP32", "FP16", "INT8", "BIN"},
        "GPU.1": {"FP32", "FP16"},
        "NPU": {"FP16", "INT8"},
    }
    devices = list(caps)

    def reason(device: str, precision: str) -> str | None:
        spec = CandidateSpec("openvino", device, precision)
        return unsupported_reason_for(spec, devices, lambda d: caps[d if d in caps else "GPU.0"])

    assert reason("CPU", "f32") is None
    assert reason("CPU", "bf16") == "CPU has no BF16 capability"
    assert reason("CPU", "f16") == "CPU has no FP16 capability"
    assert reason("GPU", "f16") is None  # "GPU" is GPU.0
    assert reason("GPU.1", "f16") is None
    assert reason("GPU.1", "int8") == "GPU.1 has no INT8 capability"
    assert reason("NPU", "f32") == "NPU has no FP32 capability"
    assert reason("NPU", "f16") is None
    assert reason("GPU.2", "f32") == (
        "device 'GPU.2' is not available (have ['CPU', 'GPU.0', 'GPU.1', 'NPU'])"
    )
