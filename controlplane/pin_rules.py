"""Which operator backend pin a device's model gets (pure).

Pins live on a fleet and on a device, each either for every model (``pinned_backend``)
or for one model by name (``model_pins``). For model ``m`` on a device the first that
is set wins: the device's pin for ``m``, the device's pin, its fleet's pin for ``m``,
its fleet's pin. A device's pins win over its fleet's (as they did before pins per
model); within one scope, a pin for the model wins over the pin for every model.

``reselect_of``: the operator's re-selection counter a device's model gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Source = Literal["device", "fleet"]


@dataclass(frozen=True)
class Pin:
    """The pin a model gets: its backend key, whose it is, and whether it names the model."""

    backend: str
    source: Source
    for_model: bool


@dataclass(frozen=True)
class Pins:
    """A device's pins and its fleet's."""

    device: str | None = None
    device_models: Mapping[str, str] = field(default_factory=dict)
    fleet: str | None = None
    fleet_models: Mapping[str, str] = field(default_factory=dict)

    def for_model(self, model: str) -> Pin | None:
        """The pin ``model`` gets on this device, if any (see the module)."""
        if backend := (self.device_models or {}).get(model):
            return Pin(backend, "device", True)
        if self.device:
            return Pin(self.device, "device", False)
        if backend := (self.fleet_models or {}).get(model):
            return Pin(backend, "fleet", True)
        if self.fleet:
            return Pin(self.fleet, "fleet", False)
        return None

    def backend_for(self, model: str) -> str | None:
        pin = self.for_model(model)
        return pin.backend if pin is not None else None


#: The key of ``Device.reselects`` that counts re-selections of every model.
EVERY_MODEL = "*"


def reselect_of(reselects: Mapping[str, int], model: str) -> int:
    """The re-selection counter a model's assignment carries: its own plus every model's
    (``*``), so that either request raises it (both only grow)."""
    return int(reselects.get(model, 0)) + int(reselects.get(EVERY_MODEL, 0))
