"""Which operator pin each model of a device gets (``controlplane.pin_rules``)."""

from __future__ import annotations

from controlplane.pin_rules import Pin, Pins

ORT = "onnxruntime:CPUExecutionProvider:f32"
OV = "openvino:CPU:f32"
BF16 = "openvino:CPU:bf16"


def test_no_pins_leave_every_model_to_measuring() -> None:
    assert Pins().for_model("det") is None


def test_the_device_wins_over_the_fleet_and_a_model_pin_over_its_scope() -> None:
    fleet_only = Pins(fleet=ORT, fleet_models={"cls": OV})
    assert fleet_only.for_model("cls") == Pin(OV, "fleet", True)
    assert fleet_only.for_model("det") == Pin(ORT, "fleet", False)
    device = Pins(device=BF16, fleet=ORT, fleet_models={"cls": OV})
    assert device.for_model("cls") == Pin(BF16, "device", False)  # the device's, for all
    both = Pins(device=BF16, device_models={"det": ORT}, fleet_models={"det": OV})
    assert both.for_model("det") == Pin(ORT, "device", True)
    assert both.for_model("cls") == Pin(BF16, "device", False)
    assert both.backend_for("other") == BF16
