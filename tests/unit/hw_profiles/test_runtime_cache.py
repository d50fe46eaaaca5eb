"""The runtime probe's answer kept on disk (``hw_profiles.runtime_cache``): a restart with
the same interpreter, runtime installs and boot starts no probe child; any other key, or
a broken file, is ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw_profiles import runtime_cache, runtimes


@pytest.fixture
def fresh() -> Iterator[None]:
    """No answer in memory, no child started, no cache file configured: before and after."""

    def reset() -> None:
        runtimes.probe_runtimes.cache_clear()
        runtimes._started.clear()
        runtimes._kept.clear()

    reset()
    yield
    reset()


def test_a_kept_answer_spares_the_child_on_the_next_start(tmp_path: Path, fresh: None) -> None:
    cache = tmp_path / runtime_cache.FILENAME
    runtimes.start_probe(cache)
    assert len(runtimes._started) == 1  # nothing kept yet: the child runs
    probed = runtimes.probe_runtimes()
    assert "CPUExecutionProvider" in probed.onnxruntime_providers
    assert json.loads(cache.read_text())["key"] == runtime_cache.cache_key()

    runtimes.probe_runtimes.cache_clear()  # a restart
    runtimes._kept.clear()
    runtimes.start_probe(cache)
    assert runtimes._started == []  # no child
    assert runtimes.probe_runtimes() == probed


def test_another_key_or_a_broken_file_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / runtime_cache.FILENAME
    runtime_cache.write(cache, "k1", {"onnxruntime_version": "1"})
    assert runtime_cache.read(cache, "k1") == {"onnxruntime_version": "1"}
    assert runtime_cache.read(cache, "k2") is None  # an upgrade, another boot
    cache.write_text("{not json")
    assert runtime_cache.read(cache, "k1") is None
    assert runtime_cache.read(tmp_path / "missing.json", "k1") is None
    runtime_cache.write(tmp_path / "no" / "dir.json", "k1", {})  # only logged


def test_the_key_follows_the_runtime_installs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = runtime_cache.cache_key()
    assert runtime_cache.cache_key() == before
    monkeypatch.setattr(runtime_cache, "RUNTIME_MODULES", ("onnxruntime", "no_such_runtime"))
    assert runtime_cache.cache_key() != before
    monkeypatch.setattr(runtime_cache, "BOOT_ID", tmp_path / "boot_id")
    (tmp_path / "boot_id").write_text("another-boot\n")
    other_boot = runtime_cache.cache_key()
    (tmp_path / "boot_id").write_text("a-third-boot\n")
    assert runtime_cache.cache_key() != other_boot
