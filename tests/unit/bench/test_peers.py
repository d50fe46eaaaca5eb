"""``bench.peers`` without a peer: where its environments live, when one counts as ready,
and how the ratios against the best peer are formed (the benchmark itself runs in
``python -m bench --quick``, measuring each peer whose environment is ready)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.peers import _ratio
from bench.peers_envs import CACHE_ENV, PeerEnv, cache_dir


def test_environments_live_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_dir() == Path.home() / ".cache/edgefleet/bench-peers"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    env = PeerEnv("mlserver", "1.7.1")
    assert env.path == tmp_path / "mlserver-1.7.1"
    assert env.requirements[0] == "mlserver==1.7.1"
    assert env.requirements[1].startswith("onnxruntime==")


def test_an_environment_is_ready_only_for_its_own_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    env = PeerEnv("kserve", "0.21.0")
    assert not env.ready()  # never installed
    env.path.mkdir()
    (env.path / ".ready").write_text("kserve==0.21.0\nonnxruntime==0.0.1\nnumpy\n")
    assert not env.ready()  # made for another onnxruntime: made again by install()
    (env.path / ".ready").write_text("\n".join(env.requirements) + "\n")
    assert env.ready()


def _paths(**added: float) -> dict[str, Any]:
    return {name: {"p50_added_ms": ms} for name, ms in added.items()}


def test_ratios_are_against_the_best_peer_of_the_same_encoding() -> None:
    paths = _paths(
        agent_binary=0.5, agent_json=4.0, mlserver_json=16.0, kserve_json=40.0, kserve_binary=10.0
    )
    assert _ratio(paths, "json") == (0.25, "mlserver")
    assert _ratio(paths, "binary") == (0.05, "kserve")
    assert _ratio(_paths(agent_binary=0.5, agent_json=4.0), "json") == (None, None)
