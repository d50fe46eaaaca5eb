"""The fit rule (``agent.deployment.fit``): the budget, what each loaded model counts,
the memory check (declared, then measured) and the disk check. Pure functions."""

from __future__ import annotations

import pytest

from agent.deployment.fit import (
    MIB,
    Held,
    default_budget,
    disk_problem,
    disk_reserve,
    memory_budget,
    memory_problem,
    models_bytes,
    size_text,
)

GIB = 1024 * MIB


def test_the_budget_is_the_configured_one_else_three_quarters_of_the_ram() -> None:
    assert memory_budget(512, {"ram_bytes": 16 * GIB}) == 512 * MIB
    assert memory_budget(None, {"ram_bytes": 16 * GIB}) == 12 * GIB
    assert memory_budget(None, {"ram_bytes": 8 * GIB}) == 6 * GIB
    # unknown RAM: no budget (nothing is refused for memory)
    assert memory_budget(None, {}) is None
    for unknown in (0, -1, True, "16 GiB", None, 1.5):
        assert default_budget(unknown) is None


def test_a_model_counts_measured_else_declared_else_nothing() -> None:
    assert Held("a", "1", measured=5, declared=9).counted == 5
    assert Held("a", "1", measured=0, declared=9).counted == 0
    assert Held("a", "1", declared=9).counted == 9
    assert Held("a", "1").counted == 0
    held = [Held("a", "1", measured=5), Held("b", "1", declared=7), Held("c", "1")]
    assert models_bytes(held) == 12
    assert models_bytes([]) == 0


def test_a_model_that_fits_beside_the_others_passes() -> None:
    others = [Held("det", "1", measured=300 * MIB), Held("cls", "1", declared=200 * MIB)]
    fits = memory_problem(
        name="ocr", version="1", need=500 * MIB, measured=False, others=others, budget=GIB
    )
    assert fits is None
    # exactly the budget fits
    assert (
        memory_problem(
            name="ocr", version="1", need=524 * MIB, measured=False, others=others, budget=GIB
        )
        is None
    )


def test_a_model_that_does_not_fit_is_refused_in_one_line_naming_the_others() -> None:
    others = [Held("det", "1.0.0", measured=300 * MIB), Held("cls", "2.0.0", declared=200 * MIB)]
    problem = memory_problem(
        name="ocr", version="3.0.0", need=GIB, measured=False, others=others, budget=GIB
    )
    assert problem == (
        "does not fit in memory: ocr 3.0.0 declares 1.0 GiB beside cls 2.0.0 (200.0 MiB "
        "declared), det 1.0.0 (300.0 MiB measured); the models would take 1.5 GiB, over "
        "the device's 1.0 GiB budget (memory_budget_mb)"
    )
    assert "\n" not in problem
    alone = memory_problem(
        name="ocr", version="3.0.0", need=2 * GIB, measured=True, others=[], budget=GIB
    )
    assert alone == (
        "does not fit in memory: ocr 3.0.0 measures 2.0 GiB; the models would take 2.0 GiB, "
        "over the device's 1.0 GiB budget (memory_budget_mb)"
    )


def test_a_new_version_replaces_its_older_one_in_the_count() -> None:
    """The older version of the same name is left out: a name counts once, new version."""
    others = [Held("det", "1.0.0", measured=700 * MIB), Held("cls", "1.0.0", measured=100 * MIB)]
    problem = memory_problem(
        name="det", version="2.0.0", need=800 * MIB, measured=False, others=others, budget=GIB
    )
    assert problem is None
    too_big = memory_problem(
        name="det", version="2.0.0", need=1000 * MIB, measured=False, others=others, budget=GIB
    )
    assert too_big is not None and "det 1.0.0" not in too_big and "cls 1.0.0" in too_big


def test_nothing_is_refused_without_a_budget_or_a_figure() -> None:
    others = [Held("det", "1", measured=10 * GIB)]
    assert (
        memory_problem(name="a", version="1", need=GIB, measured=True, others=others, budget=None)
        is None
    )
    # a bundle that declares nothing is not refused before it is loaded (measured then)
    assert (
        memory_problem(name="a", version="1", need=None, measured=False, others=others, budget=1)
        is None
    )


def test_the_disk_reserve_is_the_configured_one_else_256_mib_at_most_5_percent() -> None:
    assert disk_reserve(None, 100 * GIB) == 256 * MIB
    assert disk_reserve(None, 2 * MIB) == 2 * MIB // 20
    assert disk_reserve(0, 100 * GIB) == 0
    assert disk_reserve(1024, 2 * MIB) == GIB  # as configured, even beyond the disk


@pytest.mark.parametrize(
    ("need", "free", "reserve", "fits"),
    [(100, 200, 100, True), (101, 200, 100, False), (0, 0, 0, True), (1, 0, 0, False)],
)
def test_the_disk_check_keeps_the_reserve_free(
    need: int, free: int, reserve: int, fits: bool
) -> None:
    problem = disk_problem(label="det 2.0.0", need=need, free=free, reserve=reserve)
    assert (problem is None) == fits


def test_the_disk_refusal_says_what_is_needed_free_and_kept() -> None:
    assert disk_problem(label="det 2.0.0", need=500, free=100, reserve=0) == (
        "no space left on device while staging det 2.0.0: needs 500 bytes, 100 free"
    )
    assert disk_problem(label="det 2.0.0", need=50, free=100, reserve=60) == (
        "no space left on device while staging det 2.0.0: needs 50 bytes, 100 free "
        "(keeping 60 free: disk_reserve_mb)"
    )


def test_sizes_read_in_the_unit_that_fits() -> None:
    assert size_text(10) == "10 bytes"
    assert size_text(1536) == "1.5 KiB"
    assert size_text(12 * MIB + MIB // 2) == "12.5 MiB"
    assert size_text(3 * GIB) == "3.0 GiB"
