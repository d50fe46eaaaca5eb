"""How far a shadow model's outputs are from the serving model's on the same request
(pure: no I/O, no clock), and the running tally of a shadow period.

``compare`` looks at every output the serving model returned:

- a float output of shape ``[batch, classes]`` (classes >= 2) whose serving values are
  probabilities (each in [0, 1], each row summing to 1 within ``SUM_TOLERANCE``: a
  softmax) is a *distribution*: the two agree when every row has the same top-1 class
  (``numpy.argmax``: ties go to the first class on both sides), and the rows are
  counted for ``top1_agreement_pct``;
- any other float output (logits, boxes, embeddings...) agrees when its largest
  deviation is at most ``tolerance``: a [batch, 4] box output is never judged by its
  "top-1";
- an integer or bool output agrees only when equal.

A deviation is ``|shadow - serving| / scale``, where ``scale`` is the serving output's
largest magnitude, at least ``ABS_FLOOR`` (so outputs near zero are not judged on noise).
A missing output, another shape or dtype kind, or a non-finite shadow value is a
disagreement (and not counted in the deviations).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: an output agrees when its largest relative deviation is at most this
REL_TOLERANCE = 1e-2
#: the smallest scale a deviation is taken relative to
ABS_FLOOR = 1e-6
#: how far from 1 a row of probabilities may sum
SUM_TOLERANCE = 1e-3
#: latencies kept per side for the percentiles (the most recent)
LATENCY_WINDOW = 4096


@dataclass(frozen=True)
class Comparison:
    """One request's verdict: ``agrees``; the largest and the mean deviation over its
    float and integer outputs (None: none comparable); top-1 rows compared / equal."""

    agrees: bool
    max_deviation: float | None
    mean_deviation: float | None
    top1_rows: int = 0
    top1_equal: int = 0


def is_distribution(array: np.ndarray) -> bool:
    """A ``[batch, classes]`` float output (two classes or more) of probabilities."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    if array.dtype.kind != "f" or array.ndim != 2 or array.shape[1] < 2 or not array.size:
        return False
    if not np.all((array >= 0) & (array <= 1)):
        return False
    return bool(np.all(np.abs(np.sum(array, axis=1, dtype=np.float64) - 1.0) <= SUM_TOLERANCE))


def compare(
    serving: Mapping[str, np.ndarray],
    shadow: Mapping[str, np.ndarray],
    *,
    tolerance: float = REL_TOLERANCE,
) -> Comparison:
    """Compare the shadow's outputs with the serving model's (see the module doc)."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    agrees = True
    deviations: list[tuple[float, float]] = []  # (max, mean) per output
    rows = equal = 0
    for name, served in serving.items():
        a = np.asarray(served)
        got = shadow.get(name)
        if got is None:
            agrees = False
            continue
        b = np.asarray(got)
        if (
            a.shape != b.shape
            or (a.dtype.kind in "fc") != (b.dtype.kind in "fc")
            or (a.dtype.kind in "fciub") != (b.dtype.kind in "fciub")  # numbers vs strings
        ):
            agrees = False
            continue
        if b.dtype.kind in "fc" and not np.all(np.isfinite(b)):
            agrees = False
            continue
        if a.dtype.kind not in "fciub":  # strings and objects: equal or not
            agrees = agrees and bool(np.array_equal(a, b))
            continue
        ref = a.astype(np.float64, copy=False)
        diff = np.abs(b.astype(np.float64, copy=False) - ref)
        scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, ABS_FLOOR)
        worst = float(np.max(diff)) / scale if diff.size else 0.0
        deviations.append((worst, float(np.mean(diff)) / scale if diff.size else 0.0))
        if a.dtype.kind not in "fc":
            agrees = agrees and worst == 0.0
        elif is_distribution(a):
            same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
            rows += int(same.size)
            equal += int(np.count_nonzero(same))
            agrees = agrees and bool(np.all(same))
        else:
            agrees = agrees and worst <= tolerance
    if not deviations:
        return Comparison(agrees, None, None, rows, equal)
    return Comparison(
        agrees,
        max(d[0] for d in deviations),
        sum(d[1] for d in deviations) / len(deviations),
        rows,
        equal,
    )


def _percentile(values: deque[float], q: float) -> float | None:
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    if not values:
        return None
    return float(np.percentile(np.fromiter(values, dtype=np.float64), q))


@dataclass
class Tally:
    """The running figures of one shadow period (not thread-safe: ``Shadow`` locks)."""

    compared: int = 0
    errors: int = 0
    agreeing: int = 0
    top1_rows: int = 0
    top1_equal: int = 0
    max_deviation: float | None = None
    _deviation_sum: float = 0.0
    _deviation_count: int = 0
    shadow_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    serving_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def add(self, result: Comparison, *, shadow_ms: float, serving_ms: float) -> None:
        """One compared request."""
        self.compared += 1
        self.agreeing += int(result.agrees)
        self.top1_rows += result.top1_rows
        self.top1_equal += result.top1_equal
        if result.max_deviation is not None and math.isfinite(result.max_deviation):
            self.max_deviation = max(self.max_deviation or 0.0, result.max_deviation)
        if result.mean_deviation is not None and math.isfinite(result.mean_deviation):
            self._deviation_sum += result.mean_deviation
            self._deviation_count += 1
        self.shadow_ms.append(shadow_ms)
        self.serving_ms.append(serving_ms)

    def failed(self) -> None:
        """One sampled request the shadow failed on: compared, and a disagreement."""
        self.compared += 1
        self.errors += 1

    @property
    def agreement_pct(self) -> float | None:
        return 100.0 * self.agreeing / self.compared if self.compared else None

    @property
    def top1_agreement_pct(self) -> float | None:
        return 100.0 * self.top1_equal / self.top1_rows if self.top1_rows else None

    @property
    def mean_deviation(self) -> float | None:
        if not self._deviation_count:
            return None
        return self._deviation_sum / self._deviation_count

    def latency(self, side: str, q: float) -> float | None:
        """The ``q`` percentile (ms) of ``side`` ("shadow" or "serving")."""
        return _percentile(self.shadow_ms if side == "shadow" else self.serving_ms, q)
