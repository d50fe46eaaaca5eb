"""The README's tour, run as written against ``edgectl demo --keep``.

The commands come from README.md itself (the last ``sh`` block of "A short tour of the
CLI"), so the README and this test cannot drift apart. The demo runs as a user starts it
(a subprocess); its one ``export`` line is the only set-up the tour gets.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOUR_HEADING = "## A short tour of the CLI"


def tour_commands(readme: str) -> str:
    """The last ``sh`` block of the tour's section of ``readme``."""
    section = readme.split(TOUR_HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"no sh block under {TOUR_HEADING!r} in README.md"
    return str(blocks[-1])


class Demo:
    """``edgectl demo --keep`` in a subprocess; its output collected by a thread."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgectl.cli", "demo", "--keep", "--workdir", str(workdir)],
            cwd=REPO,
            env=env | {"PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def export_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if line.startswith("export ")]
            if found:
                assert len(found) == 1, self.output()
                return found[0]
            assert self.process.poll() is None, "the demo stopped:\n" + self.output()
            time.sleep(0.5)
        raise AssertionError("no export line from the demo:\n" + self.output())

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _exports(line: str) -> dict[str, str]:
    words = shlex.split(line)
    assert words[0] == "export"
    pairs = dict(word.split("=", 1) for word in words[1:])
    assert set(pairs) == {"EDGECTL_URL", "EDGECTL_TOKEN", "EDGECTL_KEY"}, line
    return pairs


def _edgectl(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgectl.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _newcomer_mistakes(here: Path, env: dict[str, str]) -> None:
    """What a newcomer trips on, against the same demo: a key the demo does not trust is
    refused naming the key id `keys create` printed; a push while a rollout of the model
    is running is refused before anything is uploaded or registered."""
    model = str(Path(env["EDGECTL_KEY"]).parents[1] / "model" / "demo-classifier.onnx")
    made = _edgectl(here, env, "keys", "create", "--out", "stranger")
    assert made.returncode == 0, made.stderr
    kid = re.search(r"release key id: ([0-9a-f]{64})", made.stdout)
    assert kid is not None, made.stdout
    push = ["push", "model", model, "--name", "demo-classifier", "--fleet", "demo"]
    refused = _edgectl(here, env, *push, "--version", "8.0.0", "--key", "stranger/release.key")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"signed by an untrusted key (key id {kid.group(1)[:16]})" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr

    options = ["--canary", "1", "--wait", "10m", "--no-gate", "--detach"]
    held = _edgectl(here, env, *push, "--version", "9.0.0", *options)
    assert held.returncode == 0, held.stdout + held.stderr
    second = _edgectl(here, env, *push, "--version", "9.0.1", "--no-gate")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "is running: let it complete" in second.stderr
    assert "nothing was uploaded" in second.stderr, second.stderr
    versions = _edgectl(here, env, "models", "show", "demo-classifier")
    assert "9.0.0" in versions.stdout and "9.0.1" not in versions.stdout, versions.stdout


def test_the_readme_tour_runs_as_written_against_the_demo(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MQTT_URL") and not k.startswith("EDGECTL_")
    }
    script = tour_commands((REPO / "README.md").read_text())
    demo = Demo(tmp_path / "demo", env)
    try:
        exports = _exports(demo.export_line(timeout=240))
        here = tmp_path / "tour"  # where the user's shell is: files the tour makes land here
        here.mkdir()
        (here / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-x", "-c", script],
            cwd=here,
            env=env | exports,
            capture_output=True,
            text=True,
            timeout=240,
        )
        took = time.monotonic() - started
        if result.returncode == 0:
            _newcomer_mistakes(here, env | exports)
    finally:
        demo.stop()
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted((tmp_path / "demo" / "logs").glob("*.log"))
    )
    shown = f"{result.stdout}\n--- stderr (each command after +)\n{result.stderr}\n{logs}"
    assert result.returncode == 0, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    # the gated push says at once what the gate waits for, and the rollout completes
    assert "gate: each device judged after 100 requests on the new version" in result.stdout
    assert "completed: all 3 devices updated" in result.stdout, shown
    # the key id `keys create` prints is the one the trust document then lists
    printed = re.search(r"release key id: ([0-9a-f]{64})", result.stdout)
    assert printed is not None and printed.group(1) in result.stdout.split(printed.group(0))[1]
    # the timeline and the audit trail show what the tour did
    assert re.search(r"^WHEN +KIND +MODEL +WHAT", result.stdout, re.M), shown
    assert "rollout.create" in result.stdout and "(admin)" in result.stdout, shown
    print(f"the tour took {took:.0f}s")  # measured, not asserted: the box is shared
