"""Backend selection on the wire: pinned backend keys and what a device measured.

A backend *candidate key* is ``runtime:device:precision[+variant]``:
``onnxruntime:CPUExecutionProvider:f32``, ``openvino:CPU:bf16``, ``openvino:GPU.0:f16``,
``onnxruntime:CPUExecutionProvider:f32+t1`` (a plain-default variant, see
``hw_profiles.variants``).
The control plane sends an operator's pin
as ``ModelAssignment.backend`` (a :data:`BackendKey`, validated strictly: it is part of a
signed command). A device reports how it chose the backend of each active model as
``ActiveModel.selection`` (a :class:`SelectionReport` with one :class:`CandidateFigures`
per candidate).

Reports are parsed leniently: every field has a default so an older or newer agent's
report still parses, and free text (reasons, why a candidate was excluded) is cut to
``REPORT_TEXT_MAX`` characters rather than refused, so one long error message never
makes a whole state report malformed. A figure that is not finite (NaN, infinity) is
read as None ("not measured"): JSON has no such numbers and PostgreSQL refuses them.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from protocol.fields import MAX_INT64

BACKEND_KEY_PATTERN = r"^[a-z0-9_]+:[A-Za-z0-9_.]+:[a-z0-9]+(\+[a-z0-9]+)?$"
BACKEND_KEY_MAX = 128
#: A pinned backend candidate key (``runtime:device:precision``).
BackendKey = Annotated[
    str, StringConstraints(pattern=BACKEND_KEY_PATTERN, max_length=BACKEND_KEY_MAX)
]
REPORT_TEXT_MAX = 512
#: At most this many candidates per report (a profile lists a handful).
MAX_CANDIDATES = 64


def _cut(value: object) -> object:
    if isinstance(value, str) and len(value) > REPORT_TEXT_MAX:
        return value[: REPORT_TEXT_MAX - 1] + "…"
    return value


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _duration(value: float) -> float:
    return value if math.isfinite(value) and value >= 0 else 0.0


ReportText = Annotated[str, BeforeValidator(_cut), StringConstraints(max_length=REPORT_TEXT_MAX)]
#: Seconds; a negative or non-finite one is read as 0.
Duration = Annotated[float, AfterValidator(_duration)]
#: A measured figure; None when not measured (a non-finite number is read as None).
Figure = Annotated[float | None, AfterValidator(_finite)]


class _Report(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CandidateFigures(_Report):
    """What backend selection measured for one candidate on the device.

    ``p50_ms``/``p99_ms`` are None when it was not timed (it failed to load, or the
    choice was pinned or cached); ``rel_error`` is its worst max abs error against the
    fp32 reference over the accuracy guard's input sets, relative to the reference's scale
    (``agent.selection.guard``); ``excluded`` says why it could not be chosen, else None.
    """

    key: str = Field(max_length=BACKEND_KEY_MAX)
    p50_ms: Figure = None
    p99_ms: Figure = None
    runs: int = Field(default=0, ge=0, le=MAX_INT64)
    rel_error: Figure = None
    excluded: ReportText | None = None


class SelectionReport(_Report):
    """How a device chose the backend of one active model, with every candidate's figures.

    ``chosen``: the winning candidate key; ``reason``: why (lowest p50, pinned, cached,
    the only candidate); ``profile``: the hardware profile the host matched; ``cached``:
    the result came from the device's selection cache (nothing measured now);
    ``pinned``: an operator pin decided it; ``elapsed_s``: how long selection took.
    """

    chosen: str = Field(max_length=BACKEND_KEY_MAX)
    reason: ReportText
    profile: str = Field(max_length=128)
    cached: bool = False
    elapsed_s: Duration = 0.0
    pinned: bool = False
    candidates: list[CandidateFigures] = Field(default_factory=list, max_length=MAX_CANDIDATES)
