"""Docker for the system tests (tests/system): is an engine there, and the images?

Without them a system test is skipped, unless ``EDGEFLEET_REQUIRE_DOCKER=1`` (set by
``make test`` and ``make compose-test``, which build the images first): then it fails,
so CI never passes by skipping."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REQUIRE_ENV = "EDGEFLEET_REQUIRE_DOCKER"


def _missing(images: tuple[str, ...]) -> str | None:
    if shutil.which("docker") is None:
        return "no docker client"
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    if info.returncode != 0:
        return "no Docker engine answers (dockerd not running?)"
    for image in images:
        found = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
        )
        if found.returncode != 0:
            return f"image {image} not built (make images)"
    return None


def require_docker(*images: str) -> None:
    """Skip (or fail, with ``EDGEFLEET_REQUIRE_DOCKER=1``) unless Docker and ``images`` are
    there."""
    reason = _missing(images)
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """``docker ARGS``: its stdout; a failure raises with its stderr."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done.stdout
