"""The accuracy guard: a candidate's outputs against the fp32 reference's.

Default tolerance: the largest absolute difference over every output element is at most
1% of the largest absolute value of the reference (``DEFAULT_TOLERANCE`` = 0.01; a bundle
may set its own). Integer and boolean outputs must be equal. A shape or dtype mismatch, or
a non-finite value where the reference is finite, is always out of tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DEFAULT_TOLERANCE = 0.01


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[float, str | None]:
    """(the max abs error relative to the reference's max abs value, why it is out of
    tolerance or None)."""
    worst = 0.0
    for name, ref in reference.items():
        got = candidate.get(name)
        if got is None:
            return float("inf"), f"output {name!r} missing"
        ref, got = np.asarray(ref), np.asarray(got)
        if ref.shape != got.shape:
            return float("inf"), f"output {name!r} shape {list(got.shape)} != {list(ref.shape)}"
        if ref.dtype.kind not in "fc":
            if not np.array_equal(ref, got):
                return float("inf"), f"output {name!r} ({ref.dtype}) differs from the reference"
            continue
        r, g = ref.astype(np.float64), got.astype(np.float64)
        if not np.all(np.isfinite(g) | ~np.isfinite(r)):
            return float("inf"), f"output {name!r} is not finite where the reference is"
        finite = np.isfinite(r)
        scale = float(np.max(np.abs(r[finite]))) if finite.any() else 0.0
        err = float(np.max(np.abs(r[finite] - g[finite]))) if finite.any() else 0.0
        relative = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        worst = max(worst, relative)
    if worst > tolerance:
        return worst, f"max abs error {worst:.2%} of the reference's max, over {tolerance:.2%}"
    return worst, None
