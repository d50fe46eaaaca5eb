"""The metrics registry: counts, error kinds, histogram percentiles against numpy, the
version split of a hot swap over real ONNX Runtime runners, and Prometheus text that
the reference parser (prometheus_client) reads back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import psutil
import pytest
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent.errors import InferenceError, InvalidInput
from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.serving import LoadedModel, ServedModels
from agent.telemetry import (
    BOUNDS,
    PROMETHEUS_BOUNDS,
    ErrorKind,
    MetricsRegistry,
    ModelStats,
    model_text,
    render_prometheus,
)
from model_store import build_bundle, load_metadata
from tests.support.onnx_models import affine_model


def _bucket_width(value: float) -> float:
    i = int(np.searchsorted(BOUNDS, value, side="left"))
    return BOUNDS[i] - (BOUNDS[i - 1] if i else 0.0)


def test_bounds_are_log_spaced_and_the_exposed_ones_a_subset() -> None:
    ratios = np.diff(np.log10(BOUNDS))
    assert BOUNDS[0] == 1e-6 and BOUNDS[-1] == 100.0 and len(BOUNDS) == 81
    assert ratios.min() > 0.08 and ratios.max() < 0.12  # ~10 per decade
    assert set(PROMETHEUS_BOUNDS) <= set(BOUNDS)


def test_counts_errors_and_empty_percentiles() -> None:
    stats = ModelStats("det", "1.0.0", "onnxruntime-cpu")
    empty = stats.snapshot()
    assert empty.requests == 0 and empty.quantile(0.5) is None
    assert empty.to_message().p99_ms is None
    for seconds in (0.001, 0.002, 0.003):
        stats.observe(seconds)
    stats.error(ErrorKind.INVALID_INPUT)
    stats.error(ErrorKind.INVALID_INPUT)
    stats.error(ErrorKind.INFERENCE)
    message = stats.snapshot().to_message()
    # the client's bad requests are counted apart from the model's errors
    assert (message.requests, message.errors, message.client_errors) == (6, 1, 2)
    assert message.errors_by_kind == {"invalid_input": 2, "inference": 1, "overloaded": 0}
    assert message.backend == "onnxruntime-cpu"
    assert message.p50_ms is not None and 1.0 <= message.p50_ms <= 3.0

    single = ModelStats("m", "1", "b")
    single.observe(0.0123)
    assert single.snapshot().quantile(0.99) == pytest.approx(0.0123)  # clamped to min/max


@pytest.mark.parametrize("sigma", [0.3, 1.5])
def test_percentiles_match_numpy_within_a_bucket(sigma: float) -> None:
    rng = np.random.default_rng(42)
    latencies = rng.lognormal(mean=np.log(0.004), sigma=sigma, size=20_000)
    stats = ModelStats("m", "1", "b")
    for value in latencies:
        stats.observe(float(value))
    snap = stats.snapshot()
    assert snap.successes == len(latencies)
    assert snap.sum_s == pytest.approx(float(latencies.sum()))
    for q in (0.5, 0.95, 0.99):
        want = float(np.percentile(latencies, q * 100))
        got = snap.quantile(q)
        assert got is not None
        assert abs(got - want) <= _bucket_width(want), (q, got, want)


def test_observations_beyond_the_bounds() -> None:
    stats = ModelStats("m", "1", "b")
    stats.observe(2e-7)  # below the first bound
    stats.observe(250.0)  # overflow bucket
    snap = stats.snapshot()
    assert snap.counts[0] == 1 and snap.counts[-1] == 1
    assert snap.quantile(0.0) == pytest.approx(2e-7)
    assert snap.quantile(1.0) == pytest.approx(250.0)


def test_concurrent_observations_are_all_counted() -> None:
    stats = ModelStats("m", "1", "b")

    def work() -> None:
        for _ in range(5000):
            stats.observe(0.0005)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.snapshot().successes == 20_000


def test_released_entries_are_reported_once_more_when_drained() -> None:
    registry = MetricsRegistry()
    v1 = registry.bind("det", "1", "cpu")
    v1.observe(0.001)
    v2 = registry.bind("det", "2", "cpu")
    registry.release(v1)
    assert [(s.version, s.requests) for s in registry.collect()] == [("1", 1), ("2", 0)]
    assert [m.version for m in registry.model_metrics(drain=True)] == ["1", "2"]
    assert [m.version for m in registry.model_metrics(drain=True)] == ["2"]
    # the same version bound again while still held goes on counting
    again = registry.bind("det", "2", "openvino-cpu")
    assert again is v2 and registry.collect()[0].backend == "openvino-cpu"


# -- over real ONNX Runtime runners --------------------------------------------------------


def _reshape_model(path: Path) -> Path:
    """y = reshape(x, [2, 2]) for x [batch, 4]: runs for batch 1, fails in ORT for 2."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    shape = numpy_helper.from_array(np.array([2, 2], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape", [x], [y], [shape]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _loaded(tmp_path: Path, name: str, version: str, build: object = affine_model) -> LoadedModel:
    src = build(tmp_path / f"{name}-{version}" / "src" / "model.onnx")  # type: ignore[operator]
    out = tmp_path / f"{name}-{version}" / "bundle"
    build_bundle(src, out, name=name, version=version)
    runner = OnnxRuntimeRunner()
    runner.load(out, load_metadata(out))
    return LoadedModel(name, version, "a" * 64, out, runner)


@pytest.fixture
def served() -> Iterator[ServedModels]:
    models = ServedModels()
    yield models
    models.clear()


X = {"x": np.ones((1, 4), np.float32)}


def test_hot_swap_splits_figures_by_version(tmp_path: Path, served: ServedModels) -> None:
    served.activate(_loaded(tmp_path, "det", "1.0.0"))
    for _ in range(3):
        with served.use("det") as model:
            model.infer(X)
    with pytest.raises(InvalidInput), served.use("det") as model:
        model.infer({"x": np.ones((1, 5), np.float32)})  # the runner refuses it

    with served.use("det") as in_flight:  # a request that spans the swap
        served.activate(_loaded(tmp_path, "det", "2.0.0"))
        with served.use("det") as model:
            model.infer(X)
        in_flight.infer(X)  # finishes on 1.0.0, counted there

    first = {(m.version, m.requests) for m in served.metrics.model_metrics(drain=True)}
    assert first == {("1.0.0", 5), ("2.0.0", 1)}
    # 1.0.0 was final (closed after its last request) and has been reported: gone
    [current] = served.metrics.model_metrics(drain=True)
    assert (current.version, current.requests) == ("2.0.0", 1)
    assert current.backend == served.get("det").backend == "onnxruntime:CPUExecutionProvider:f32"


def test_errors_by_kind_over_a_real_runner(tmp_path: Path, served: ServedModels) -> None:
    served.activate(_loaded(tmp_path, "r", "1", _reshape_model))
    with served.use("r") as model:
        model.infer(X)
    with pytest.raises(InferenceError), served.use("r") as model:
        model.infer({"x": np.ones((2, 4), np.float32)})  # ORT fails at run time
    with pytest.raises(InvalidInput), served.use("r"):
        raise InvalidInput("body does not fit")  # refused before the backend (REST decode)
    [metrics] = served.metrics.model_metrics()
    assert (metrics.requests, metrics.errors, metrics.client_errors) == (3, 1, 1)
    assert metrics.errors_by_kind == {"invalid_input": 1, "inference": 1, "overloaded": 0}
    assert metrics.p50_ms is not None


# -- Prometheus text -----------------------------------------------------------------------


def _samples(text: bytes) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in text_string_to_metric_families(text.decode())}


def test_prometheus_text_parses_and_escapes_labels(tmp_path: Path) -> None:
    registry = MetricsRegistry()
    odd = 'v"1\\\n'
    stats = registry.bind("det", odd, "onnxruntime")
    for seconds in (3e-6, 0.0004, 0.0004, 0.02, 500.0):
        stats.observe(seconds)
    stats.error(ErrorKind.INFERENCE)
    text = model_text(registry)
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert families["edgefleet_inference_requests"].type == "counter"
    assert families["edgefleet_inference_latency_seconds"].type == "histogram"

    samples = _samples(text)
    [requests] = samples["edgefleet_inference_requests"]
    assert requests.labels == {"model": "det", "version": odd, "backend": "onnxruntime"}
    assert requests.value == 6
    errors = {s.labels["kind"]: s.value for s in samples["edgefleet_inference_errors"]}
    assert errors == {"invalid_input": 0, "inference": 1, "overloaded": 0}
    latency = samples["edgefleet_inference_latency_seconds"]
    buckets = [(float(s.labels["le"]), s.value) for s in latency if s.name.endswith("_bucket")]
    assert [b for b, _ in buckets] == [*PROMETHEUS_BOUNDS, float("inf")]
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert dict(buckets)[5e-6] == 1 and dict(buckets)[0.0005] == 3 and dict(buckets)[100.0] == 4
    by_name = {s.name: s.value for s in latency if not s.name.endswith("_bucket")}
    assert by_name["edgefleet_inference_latency_seconds_count"] == 5
    assert by_name["edgefleet_inference_latency_seconds_sum"] == pytest.approx(500.020803)


def test_render_prometheus_adds_host_gauges(tmp_path: Path, served: ServedModels) -> None:
    served.activate(_loaded(tmp_path, "det", "1.0.0"))
    with served.use("det") as model:
        model.infer(X)
    samples = _samples(render_prometheus(served.metrics, tmp_path))
    assert samples["edgefleet_inference_requests"][0].value == 1
    [total] = samples["edgefleet_host_disk_total_bytes"]
    assert total.value == psutil.disk_usage(str(tmp_path)).total
    assert samples["edgefleet_host_memory_total_bytes"][0].value == psutil.virtual_memory().total
    assert 0.0 <= samples["edgefleet_host_cpu_percent"][0].value <= 100.0
    assert {s.labels["period"] for s in samples["edgefleet_host_load_average"]} == {
        "1m",
        "5m",
        "15m",
    }
    assert "edgefleet_host_temperature_celsius" in samples  # the family, even with no sensor
    assert "edgefleet_host_disk_total_bytes" not in _samples(
        render_prometheus(served.metrics, None)
    )
