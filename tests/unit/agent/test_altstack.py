"""The agent survives SIGTERM after selection measured several OpenVINO candidates.

OpenVINO's CPU plugin leaves a freed alternate signal stack on a thread when compiled
models are not destroyed in reverse order; the next signal then crashed the process
(exit -11). A real child process measures two OpenVINO candidates and ONNX Runtime, then
sends itself SIGTERM: it must run its handler and exit 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.runners import available_runners
from tests.support.paths import REPO

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    from pathlib import Path
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    from tests.support.selection import OV, OV_BF16, ORT, det_bundle, select, selector_for
    tmp = Path(sys.argv[1])
    selection, _ = select(selector_for(tmp, OV_BF16, OV, ORT), det_bundle(tmp))
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(10), "the SIGTERM handler did not run"
    selection.runner.close()
    print("clean exit")
    """
)


@pytest.mark.skipif("openvino" not in available_runners(), reason="OpenVINO is not installed")
def test_sigterm_after_measuring_several_openvino_candidates(tmp_path: Path) -> None:
    root = REPO
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "clean exit" in result.stdout
