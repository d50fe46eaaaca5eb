"""The health gate a new model passes before it is committed.

1. It loaded (the ``selecting`` step did that).
2. Warm-up on a bootstrap input: ``bootstrap.npz`` shipped in the (signed) bundle, one
   array per declared input name, or else the first input set generated from the bundle's
   input hints and the defaults (``agent.runners.inputs``: the same input selection was
   timed on). The first run is a warm-up; then ``runs`` timed runs. A failure on
   generated inputs names them and says how to supply better ones.
3. Every float output of every run is finite (no NaN, no infinity).
4. If ``max_latency_ratio`` is configured and the previous version's gate latency is known:
   the new median may be at most ``ratio x previous + LATENCY_SLACK_MS`` (the slack keeps
   sub-millisecond models from failing on scheduler noise).

Any failure is ``HealthGateFailed`` with one line saying why; the lifecycle then rolls
back. The median is returned and persisted as the baseline of the next version.
"""

from __future__ import annotations

import logging
import statistics
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import AgentError, HealthGateFailed
from agent.runners.base import Runner, check_inputs
from agent.runners.inputs import BETTER_INPUTS, describe, input_sets
from model_store import ModelStoreError, load_metadata

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

BOOTSTRAP_FILENAME = "bootstrap.npz"
LATENCY_SLACK_MS = 0.5
#: a bootstrap file larger than this is refused (it is loaded into memory whole)
MAX_BOOTSTRAP_BYTES = 256 * 1024 * 1024


def _read_bootstrap(runner: Runner, bundle_dir: Path) -> dict[str, np.ndarray] | None:
    """The bundle's ``bootstrap.npz``, checked against the model; None if it has none."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    path = bundle_dir / BOOTSTRAP_FILENAME
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BOOTSTRAP_BYTES:
        raise HealthGateFailed(f"{BOOTSTRAP_FILENAME} is larger than {MAX_BOOTSTRAP_BYTES} bytes")
    try:
        with np.load(path, allow_pickle=False) as npz:
            inputs = {name: np.asarray(npz[name]) for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise HealthGateFailed(f"{BOOTSTRAP_FILENAME} cannot be read: {exc}") from exc
    try:
        check_inputs(runner.inputs, inputs)
    except AgentError as exc:
        raise HealthGateFailed(f"{BOOTSTRAP_FILENAME} does not fit the model: {exc}") from exc
    return inputs


def bundle_input_sets(
    runner: Runner, bundle_dir: Path, *, count: int = 1
) -> list[dict[str, np.ndarray]]:
    """``count`` input sets for the bundle's model: its ``bootstrap.npz`` first if it
    ships one, then sets from its input hints and the defaults (``agent.runners.inputs``)."""
    try:
        metadata = load_metadata(bundle_dir)
    except ModelStoreError as exc:
        raise HealthGateFailed(f"cannot read the bundle's metadata: {exc}") from exc
    names = {
        spec.name: [d if isinstance(d, str) and d not in ("?", "...") else None for d in spec.shape]
        for spec in metadata.inputs
    }
    return input_sets(
        runner.inputs,
        count=count,
        dim_names=names,
        hints=metadata.input_hints,
        bootstrap=_read_bootstrap(runner, bundle_dir),
    )


def bootstrap_inputs(runner: Runner, bundle_dir: Path) -> dict[str, np.ndarray]:
    """The input the gate runs: ``bootstrap.npz``, else the first generated set."""
    return bundle_input_sets(runner, bundle_dir)[0]


def _on_inputs(inputs: Mapping[str, np.ndarray], bundle_dir: Path) -> str:
    if (bundle_dir / BOOTSTRAP_FILENAME).is_file():
        return f"on {BOOTSTRAP_FILENAME} ({describe(inputs)})"
    return f"on generated inputs {describe(inputs)} ({BETTER_INPUTS})"


def _check_finite(
    outputs: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], bundle_dir: Path
) -> None:
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    for name, array in outputs.items():
        value = np.asarray(array)
        if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            on = _on_inputs(inputs, bundle_dir)
            raise HealthGateFailed(f"output {name!r} is not finite (NaN or infinity) {on}")


def health_gate(
    runner: Runner,
    bundle_dir: Path,
    *,
    runs: int = 5,
    baseline_p50_ms: float | None = None,
    max_latency_ratio: float | None = None,
) -> float:
    """Run the gate; the median latency (ms) of the timed runs. HealthGateFailed if not."""
    inputs = bootstrap_inputs(runner, bundle_dir)
    timings: list[float] = []
    for i in range(max(1, runs) + 1):
        start = time.perf_counter()
        try:
            outputs = runner.infer(inputs)
        except AgentError as exc:
            on = _on_inputs(inputs, bundle_dir)
            raise HealthGateFailed(f"warm-up inference failed {on}: {exc}") from exc
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        _check_finite(outputs, inputs, bundle_dir)
        if i:  # the first run pays one-time costs (allocation, kernel selection)
            timings.append(elapsed_ms)
    p50 = statistics.median(timings)
    if max_latency_ratio is not None and baseline_p50_ms is not None:
        bound = baseline_p50_ms * max_latency_ratio + LATENCY_SLACK_MS
        if p50 > bound:
            raise HealthGateFailed(
                f"warm-up median {p50:.2f} ms exceeds {max_latency_ratio:g}x the previous "
                f"version's {baseline_p50_ms:.2f} ms (+{LATENCY_SLACK_MS} ms)"
            )
    logger.debug("health gate of %s passed: p50 %.3f ms", runner.key, p50)
    return p50
