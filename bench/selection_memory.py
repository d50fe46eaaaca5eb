"""Peak memory of one selection against one loaded model, each in a fresh process (a
helper of ``bench.selection``, not a benchmark).

Linux only: each measurement runs in a new ``spawn`` process, which imports the
runtimes, then resets its peak resident set size (writes 5 to ``/proc/self/clear_refs``)
and reads its current one; what it reports is the peak (``VmHWM`` of
``/proc/self/status``) minus that: what the loading and running added at its highest.

    selection_peak_bytes   the whole ``Selector.select`` as a device runs it
    one_model_bytes        per candidate: that one loaded alone and warmed up (3 runs)

A fresh process per figure, because a runtime's allocator keeps what a closed model
freed: a second load in the same process would look smaller than it is. Each starts with
the runtimes' libraries read from disk again (``bench.page_cache.read_from_disk``), as
on a device that booted: right after ``make install`` their pages sit in the cache in
the large folios the install wrote, and every page a process touches then maps more
(resnet18-like, the selection's peak over one model: 1.92 right after an install, 1.69
once the kernel had evicted the files). Pages the benchmark's own process maps (it
re-measures the candidates in-process after each model's figures) stay as they are.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from bench.page_cache import read_from_disk

SUPPORTED = Path("/proc/self/clear_refs").exists()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak() -> int:
    """Reset the peak RSS to the current one; the current RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _peak_since(base: int) -> int:
    return max(0, _status_kib("VmHWM") * 1024 - base)


def _one_model(model_name: str, bundle: str, version: str, spec: Any) -> int:
    from agent.deployment.gate import bootstrap_inputs
    from agent.deployment.loading import load_runner
    from agent.runners import available_runners

    read_from_disk()  # before the runtimes are imported (module docstring)
    available_runners()  # the plugins (and their runtimes) imported before the baseline
    base = _reset_peak()
    runner = load_runner(
        Path(bundle), expected_name=model_name, expected_version=version, spec=spec
    )
    try:
        feeds = bootstrap_inputs(runner, Path(bundle))
        for _ in range(3):
            runner.infer(feeds)
        return _peak_since(base)
    finally:
        runner.close()


def _selection(select: Any, args: tuple[Any, ...]) -> tuple[Any, int]:
    from agent.runners import available_runners

    read_from_disk()
    available_runners()
    base = _reset_peak()
    result = select(*args)
    return result, _peak_since(base)


def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1
    )


def select_measured(select: Any, *args: Any) -> tuple[Any, int]:
    """``select(*args)`` run in a fresh process: (its result, the peak bytes it added)."""
    with _pool() as pool:
        return pool.submit(_selection, select, args).result()


def one_model_bytes(
    model_name: str, bundle: Path, version: str, specs: list[Any]
) -> dict[str, int]:
    """Each candidate loaded alone in a fresh process: key -> the peak bytes it added (a
    candidate that fails to load is left out)."""
    figures: dict[str, int] = {}
    for spec in specs:
        with _pool() as pool:
            try:
                figures[spec.key] = pool.submit(
                    _one_model, model_name, str(bundle), version, spec
                ).result()
            except AgentError:  # it fails the same way in the selection, which says why
                continue
    return figures


__all__ = ["SUPPORTED", "one_model_bytes", "select_measured"]
