"""Fit before install: does the device's whole set of models fit its memory budget and
disk? Pure rules (no I/O); ``steps`` feeds them what it finds.

The memory rule (docs/agent.md, "Fit before install"):

- the **budget** is the memory the device's models may take in all: ``memory_budget_mb``
  from ``agent.toml``, else three quarters of the host's RAM (``default_budget``); none
  if neither is known (then nothing is refused for memory);
- a model counts its **measured** figure once it is loaded (resident memory the process
  gained while loading and warming it up), else its **declared** one (bundle metadata
  ``serving.memory_bytes``), else nothing;
- the set is the models the deployment command names: a new model (or a new version)
  must fit beside the *other* named models that are loaded now. A new version replaces
  its older one, so a name counts once, at its new version; models the command no
  longer names are not counted (they leave once it is applied);
- checked twice: with the declared figure before its model files are downloaded (or,
  cached, before it is loaded), and with the measured figure once it is loaded, before
  it is activated (a refusal then unloads it; the version serving keeps serving).

Not counted (documented, not hidden): while a version is hot swapped, both are loaded
for a moment (the old one until its last in-flight request ends), and a model the
command drops serves until the command is applied. The memory outside the budget (a
quarter of RAM by default) is what absorbs that overlap.

The disk rule: the bundle bytes not staged yet, plus a reserve (``disk_reserve``), must
fit in the free space of the filesystem holding ``data_dir`` (``disk_problem``), checked
before any request. A refusal is ``StorageFull``: transient, retried with backoff, since
space may be freed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
#: the share of the host's RAM the models may take when ``memory_budget_mb`` is unset
DEFAULT_BUDGET_SHARE = 0.75


def size_text(n: int) -> str:
    """``1.5 GiB`` / ``12.3 MiB`` / ``512 KiB`` / ``10 bytes``: for one-line reasons."""
    for unit, scale in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def default_budget(ram_bytes: object) -> int | None:
    """``DEFAULT_BUDGET_SHARE`` of ``ram_bytes`` (the host facts' RAM); None if unknown."""
    if not isinstance(ram_bytes, int) or isinstance(ram_bytes, bool) or ram_bytes <= 0:
        return None
    return int(ram_bytes * DEFAULT_BUDGET_SHARE)


def memory_budget(configured_mb: int | None, facts: Mapping[str, Any]) -> int | None:
    """The budget in bytes: the configured MiB, else ``default_budget`` of the host RAM."""
    if configured_mb is not None:
        return configured_mb * MIB
    return default_budget(facts.get("ram_bytes"))


@dataclass(frozen=True)
class Held:
    """One model of the set that is loaded now, and what it counts."""

    name: str
    version: str
    #: the measured figure, if it was measured
    measured: int | None = None
    #: the declared figure (bundle ``serving.memory_bytes``), if it declares one
    declared: int | None = None

    @property
    def counted(self) -> int:
        """Measured, else declared, else nothing."""
        if self.measured is not None:
            return self.measured
        return self.declared if self.declared is not None else 0

    def describe(self) -> str:
        if self.measured is not None:
            return f"{self.name} {self.version} ({size_text(self.measured)} measured)"
        if self.declared is not None:
            return f"{self.name} {self.version} ({size_text(self.declared)} declared)"
        return f"{self.name} {self.version} (not measured, none declared)"


def models_bytes(held: Iterable[Held]) -> int:
    """What the loaded models count in all (``StateReport.memory_models_bytes``)."""
    return sum(h.counted for h in held)


def memory_problem(
    *,
    name: str,
    version: str,
    need: int | None,
    measured: bool,
    others: Iterable[Held],
    budget: int | None,
) -> str | None:
    """Why ``name`` ``version``, needing ``need`` bytes (``measured`` once loaded, else
    declared), does not fit beside the ``others`` of the set; None if it fits (or if
    there is no budget, or nothing is known of what it needs). ``others`` holding
    ``name`` itself (its older version) are left out: the new version replaces it."""
    if budget is None or need is None:
        return None
    rest = sorted((h for h in others if h.name != name), key=lambda h: h.name)
    total = need + models_bytes(rest)
    if total <= budget:
        return None
    how = "measures" if measured else "declares"
    beside = f" beside {', '.join(h.describe() for h in rest)}" if rest else ""
    return (
        f"does not fit in memory: {name} {version} {how} {size_text(need)}{beside}; the "
        f"models would take {size_text(total)}, over the device's {size_text(budget)} "
        f"budget (memory_budget_mb)"
    )


#: the free space a download leaves when ``disk_reserve_mb`` is unset (at most 5 % of the
#: filesystem, so a small one keeps a small reserve)
DEFAULT_DISK_RESERVE = 256 * MIB


def disk_reserve(configured_mb: int | None, total: int) -> int:
    """The free space a download must leave on a filesystem of ``total`` bytes: the
    configured ``disk_reserve_mb``, else ``DEFAULT_DISK_RESERVE`` up to 5 % of ``total``."""
    if configured_mb is not None:
        return configured_mb * MIB
    return min(DEFAULT_DISK_RESERVE, total // 20)


def disk_problem(*, label: str, need: int, free: int, reserve: int) -> str | None:
    """Why ``need`` more bytes of ``label`` do not fit in ``free`` bytes while keeping
    ``reserve`` free; None if they do."""
    if need + reserve <= free:
        return None
    kept = f" (keeping {reserve} free: disk_reserve_mb)" if reserve else ""
    return f"no space left on device while staging {label}: needs {need} bytes, {free} free{kept}"
