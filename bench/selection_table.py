"""The per-model table ``bench.selection`` prints (a helper, not a benchmark)."""

from __future__ import annotations

from typing import Any


def print_model(name: str, r: dict[str, Any]) -> None:
    """One model's selection and re-measured figures, as a table on stdout."""
    sel = r["selection"]
    print(f"\n{name}: {r['description']}, input {r['input']} f32")
    print(f"  selection: chose {r['chosen']} ({sel['reason']}) in {sel['elapsed_s']:.1f} s")
    by_key = {c["key"]: c for c in sel["candidates"]}
    print(
        f"  {'candidate':<40} {'p50 ms':>9} {'p99 ms':>9} {'runs':>7} {'rel err':>9} "
        f"{'sel p50':>9}  notes"
    )
    for key, extra in r["remeasured"].items():
        fig = r["candidates"].get(key) or r["ort_default"]
        seen = by_key.get(key, {})
        notes = [m for m, on in (("CHOSEN", key == r["chosen"]), ("best", key == r["best"])) if on]
        if extra["excluded"]:
            notes.append(f"excluded: {extra['excluded']}")
        if seen.get("excluded") and not extra["excluded"]:
            notes.append(f"selection excluded: {seen['excluded']}")
        print(
            f"  {key:<40} {_fmt(fig['p50_ms'])} {_fmt(fig['p99_ms'])} {extra['runs']:>7} "
            f"{_fmt(extra['rel_error'], '.2%')} {_fmt(seen.get('p50_ms'))}  {', '.join(notes)}"
        )
    over, default = r["chosen_over_best"], r["ort_default_over_chosen"]
    worst = r["paired_highest"]
    against = f"{worst} {r['paired_over'][worst]:.3f}" if worst else "-"
    print(
        f"  paired rounds: chosen/best {over:.3f}   chosen/best of all "
        f"{r['chosen_over_best_all']:.3f} (highest pair: {against})   ORT default/chosen "
        f"{default:.2f}"
    )
    pooled = r["pooled"]
    print(
        f"  pooled p50s:   chosen/best {pooled['chosen_over_best']:.3f}   chosen/best of all "
        f"{pooled['chosen_over_best_all']:.3f} ({r['best_all']})"
    )
    if (memory := r.get("memory")) is not None:
        alone = memory["one_model_bytes"]
        largest = max(alone.values(), default=0)
        print(
            f"  memory: selection peak {memory['selection_peak_bytes'] / 2**20:.0f} MiB, "
            f"largest candidate alone {largest / 2**20:.0f} MiB, "
            f"ratio {memory['peak_over_largest_model']}"
        )


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return f"{'-' if value is None else format(value, spec):>9}"
