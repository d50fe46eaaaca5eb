"""Virtual environments of the peer model servers of ``bench.peers`` (a helper, not a
benchmark).

Each peer (Seldon MLServer, KServe's Python model server) pins dependency versions of
its own, so it runs from a virtual environment of its own, never the project's. A
``PeerEnv`` lives under the cache directory, ``$EDGEFLEET_BENCH_PEERS_DIR`` or else
``~/.cache/edgefleet/bench-peers``, in ``<name>-<version>/`` (outside the checkout, kept
for the next run). It holds the peer at its pinned version, the onnxruntime of the
benchmark's own process (the same version, so the same kernels) and numpy. A file
``.ready`` holding the pip requirements is written once they installed; an environment
without it, or made for other requirements, is not used (and made again by ``install``).
"""

from __future__ import annotations

import os
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

CACHE_ENV = "EDGEFLEET_BENCH_PEERS_DIR"
#: seconds one environment may take to install
INSTALL_TIMEOUT_S = 1200


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache/edgefleet/bench-peers")


@dataclass(frozen=True)
class PeerEnv:
    """One peer's virtual environment: ``package==version`` + onnxruntime + numpy."""

    package: str
    version: str

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.package}-{self.version}"

    @property
    def requirements(self) -> list[str]:
        return [f"{self.package}=={self.version}", f"onnxruntime=={ort.__version__}", "numpy"]

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def ready(self) -> bool:
        marker = self.path / ".ready"
        return marker.is_file() and marker.read_text().split() == self.requirements

    def install(self) -> None:
        """Make the environment (minutes the first time); ``RuntimeError`` with the
        tail of pip's output if it fails."""
        if self.ready():
            return
        print(f"installing {' '.join(self.requirements)} into {self.path}", flush=True)
        (self.path / ".ready").unlink(missing_ok=True)
        if not self.bin("python").exists():  # else a venv begun before: pip finishes it
            venv.EnvBuilder(with_pip=True, symlinks=True).create(self.path)
        argv = [str(self.bin("python")), "-m", "pip", "install", "--disable-pip-version-check"]
        done = subprocess.run(
            [*argv, "--quiet", *self.requirements],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise RuntimeError(f"pip install into {self.path} failed: {' | '.join(tail)}")
        (self.path / ".ready").write_text("\n".join(self.requirements) + "\n")
