"""The accuracy guard: a candidate's outputs against the fp32 reference's, on several inputs.

A candidate runs on every input set (``agent.runners.inputs``: the bootstrap or the first
generated set, then ``DEFAULT_GUARD_SETS - 1`` more generated in the hinted ranges). Its
error on a float output is ``max|ref - got| / max(scale, ABS_FLOOR)``, where ``scale`` is
the largest finite ``|ref|`` of that output over all the sets: relative to the reference's
scale, and never a division by zero (an output that is all zeros on some input is judged
against ``ABS_FLOOR`` = 1e-5 absolute). The candidate's error is the worst over every set
and output, and is what the device reports (``rel_error``).

Default tolerance: that error is at most 1% (``DEFAULT_TOLERANCE`` = 0.01; a bundle may set
its own). Integer and boolean outputs must be equal. A shape or dtype mismatch, or a
non-finite value where the reference is finite, is always out of tolerance. With ``topk``
(a bundle setting, off by default), every float output shaped ``[batch, classes]`` must
also give each row the same top-k classes as the reference (rows whose reference k-th and
(k+1)-th scores tie are not judged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from agent.errors import AgentError
from agent.runners.inputs import BETTER_INPUTS, describe

if TYPE_CHECKING:
    import numpy as np

DEFAULT_TOLERANCE = 0.01
#: the absolute scale below which errors are not magnified (all-zero reference outputs)
ABS_FLOOR = 1e-5
#: input sets the guard compares on (the first is also the timing input)
DEFAULT_GUARD_SETS = 4

Outputs = Mapping[str, "np.ndarray"]
InputSet = Mapping[str, "np.ndarray"]


def as_input_sets(inputs: InputSet | Sequence[InputSet]) -> list[InputSet]:
    """One input set or several, as a non-empty list (the first is the timing input)."""
    sets = [inputs] if isinstance(inputs, Mapping) else list(inputs)
    if not sets:
        raise ValueError("no input set to measure on")
    return sets


def run_failed(exc: AgentError, sets: Sequence[InputSet] | None) -> str:
    """Why a candidate that could not run is excluded: the inputs it was given and how to
    give better ones, then the error (a report cuts long text at its end)."""
    if not sets:
        return f"run failed: {exc}"
    return f"run failed on inputs {describe(sets[0])} ({BETTER_INPUTS}): {exc}"


def _scales(reference: Sequence[Outputs]) -> dict[str, float]:
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    scales: dict[str, float] = {}
    for outputs in reference:
        for name, ref in outputs.items():
            r = np.asarray(ref)
            if r.dtype.kind in "fc" and r.size:
                finite = np.abs(r[np.isfinite(r)].astype(np.float64))
                if finite.size:
                    scales[name] = max(scales.get(name, 0.0), float(finite.max()))
    return scales


def _topk_disagrees(ref: np.ndarray, got: np.ndarray, k: int) -> bool:
    """Whether a row of a ``[batch, classes]`` output picks other top-k classes."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    if ref.ndim != 2 or ref.shape[1] <= k:
        return False
    order = np.argsort(-ref, axis=1, kind="stable")
    ranked = np.take_along_axis(ref, order, axis=1)
    decided = ranked[:, k - 1] > ranked[:, k]  # a tie at the k-th place decides nothing
    mine = np.argsort(-got, axis=1, kind="stable")[:, :k]
    for row in np.flatnonzero(decided):
        if set(order[row, :k].tolist()) != set(mine[row].tolist()):
            return True
    return False


def compare_outputs(
    reference: Outputs | Sequence[Outputs],
    candidate: Outputs | Sequence[Outputs],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    topk: int | None = None,
) -> tuple[float, str | None]:
    """(the worst error relative to the reference's scale over every set and output,
    why the candidate is out of tolerance or None). One set or a list of sets each."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    refs = [reference] if isinstance(reference, Mapping) else list(reference)
    gots = [candidate] if isinstance(candidate, Mapping) else list(candidate)
    scales = _scales(refs)
    worst, where = 0.0, ""
    for index, (ref_set, got_set) in enumerate(zip(refs, gots, strict=True)):
        at = f" on input set {index + 1} of {len(refs)}" if len(refs) > 1 else ""
        for name, ref_value in ref_set.items():
            got_value = got_set.get(name)
            if got_value is None:
                return float("inf"), f"output {name!r} missing{at}"
            ref, got = np.asarray(ref_value), np.asarray(got_value)
            if ref.shape != got.shape:
                return float("inf"), (
                    f"output {name!r} shape {list(got.shape)} != {list(ref.shape)}{at}"
                )
            if ref.dtype.kind not in "fc":
                if not np.array_equal(ref, got):
                    return float("inf"), f"output {name!r} ({ref.dtype}) differs{at}"
                continue
            r, g = ref.astype(np.float64), got.astype(np.float64)
            if not np.all(np.isfinite(g) | ~np.isfinite(r)):
                return float("inf"), f"output {name!r} is not finite where the reference is{at}"
            finite = np.isfinite(r)
            err = float(np.max(np.abs(r[finite] - g[finite]))) if finite.any() else 0.0
            relative = err / max(scales.get(name, 0.0), ABS_FLOOR)
            if relative > worst:
                worst, where = relative, f"output {name!r}{at}"
            if topk is not None and _topk_disagrees(r, g, topk):
                return worst, f"output {name!r} ranks other top-{topk} classes{at}"
    if worst > tolerance:
        return worst, (
            f"max abs error {worst:.2%} of the reference's scale ({where}), over {tolerance:.2%}"
        )
    return worst, None
