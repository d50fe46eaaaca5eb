"""Helpers for the download tests: a big real model, a small real filesystem, and a
way to fill it.

``padded_model`` is ``two_input_model`` with ``pad_bytes`` of ``doc_string``: the same
graph and outputs, but a model file big enough to be caught mid-transfer.
``small_tmpfs`` mounts a tmpfs of a few MiB (the tests run as root; where mounting is
not permitted the test is skipped and says why) and ``fill`` writes a filler file until
the filesystem has only ``leave`` bytes free.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
import pytest

from tests.support.onnx_models import two_input_model


def padded_model(path: Path, *, pad_bytes: int, weight: float = 0.5) -> Path:
    """``two_input_model`` (y: float32 [batch, 3]) grown by ``pad_bytes`` of doc string."""
    two_input_model(path, weight=weight)
    model = onnx.load(str(path))
    model.doc_string = "p" * pad_bytes
    onnx.save(model, str(path))
    return path


@contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block (unmounted after)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount(8) on this host: cannot make a small filesystem")
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.strip() or f"exit status {result.returncode}"
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {reason}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path, *, leave: int = 0) -> Path:
    """Write ``directory/filler`` until the filesystem is full, then free ``leave`` bytes."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = b"\0" * 4096
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - leave))
    finally:
        os.close(fd)
    return filler
