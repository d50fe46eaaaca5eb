"""The simulator's traffic generator on real ONNX Runtime models: the served models' own
figures count its requests, every active model gets traffic, errors are counted and never
stop a thread, and stop() ends it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.serving import ServedModels
from agent.simulator.traffic import TrafficGenerator
from tests.support.loaded import loaded_model
from tests.support.onnx_models import affine_model, bool_input_model, two_input_model
from tests.support.ports import wait_until


@dataclass
class _Device:
    device_id: str
    models: ServedModels = field(default_factory=ServedModels)


def _requests(device: _Device) -> dict[str, int]:
    return {m.name: m.requests for m in device.models.metrics.model_metrics()}


def test_traffic_reaches_every_active_model(tmp_path: Path) -> None:
    devices = [_Device("d0"), _Device("d1")]
    devices[0].models.activate(loaded_model(tmp_path / "0", two_input_model, "two"))
    devices[0].models.activate(loaded_model(tmp_path / "1", bool_input_model, "masked"))
    devices[1].models.activate(loaded_model(tmp_path / "2", affine_model, "affine"))
    traffic = TrafficGenerator(devices, rate_hz=50)
    traffic.start()
    try:
        wait_until(
            lambda: (
                all(n >= 10 for d in devices for n in _requests(d).values())
                and len(_requests(devices[0])) == 2
            ),
            10,
            "every model to serve 10 requests",
        )
    finally:
        traffic.stop()
    assert all(t.thread is None for t in traffic._devices)
    counts = traffic.counts
    assert counts["d0"].failed == 0 and counts["d1"].failed == 0
    # after stop, no more requests arrive
    before = _requests(devices[1])["affine"]
    time.sleep(0.2)
    assert _requests(devices[1])["affine"] == before
    assert counts["d1"].sent == before
    for d in devices:
        d.models.clear()


def test_rate_is_steady(tmp_path: Path) -> None:
    device = _Device("d0")
    device.models.activate(loaded_model(tmp_path, affine_model, "affine"))
    traffic = TrafficGenerator([device], rate_hz=20)
    traffic.start()
    time.sleep(1.0)
    traffic.stop()
    sent = traffic.counts["d0"].sent
    assert 10 <= sent <= 22, sent
    device.models.clear()


def test_failures_are_counted_and_do_not_stop_the_thread(tmp_path: Path) -> None:
    device = _Device("d0")
    model = loaded_model(tmp_path, affine_model, "affine")
    device.models.activate(model)
    model.runner.close()  # every inference now fails inside the backend
    traffic = TrafficGenerator([device], rate_hz=50)
    traffic.start()
    try:
        wait_until(lambda: traffic.counts["d0"].failed >= 5, 10, "5 failed requests")
        assert traffic._devices[0].thread is not None
        assert traffic._devices[0].thread.is_alive()
    finally:
        traffic.stop()
    (figures,) = device.models.metrics.model_metrics()
    assert figures.errors >= 5 and figures.errors_by_kind.get("inference", 0) >= 5
    device.models.clear()


def test_no_active_model_means_no_requests() -> None:
    device = _Device("d0")
    traffic = TrafficGenerator([device], rate_hz=100)
    traffic.start()
    time.sleep(0.1)
    traffic.stop()
    assert traffic.counts["d0"].sent == 0
