"""Download and trust edge cases: resumed transfers, untrusted keys, unsigned files."""

from __future__ import annotations

import pytest

from model_store import write_keypair
from protocol import DeviceStatus, EventKind
from tests.support.deploy import Setup
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


def test_interrupted_download_resumes_with_range(setup: Setup) -> None:
    v1 = setup.bundle("det", "1.0.0")
    a1 = setup.assignment(v1)
    model_ref = next(f for f in a1.files if f.path == "model.onnx")
    setup.blobs.cut_once[model_ref.sha256] = model_ref.size // 2
    setup.watcher.desire(1, a1)
    with setup.agent():
        wait_until(lambda: EventKind.ACTIVATED in setup.watcher.kinds("1.0.0"), 20, "ACTIVATED")
    ranges = [r for p, r in setup.blobs.requests if model_ref.sha256 in p]
    assert ranges == [None, f"bytes={model_ref.size // 2}-"]


def test_untrusted_signature_and_unsigned_files_are_refused(setup: Setup) -> None:
    other_key, _ = write_keypair(setup.tmp / "other-keys", "rogue")
    # signed by a key the trust document does not certify
    a_rogue = setup.assignment(setup.bundle("det", "6.6.6", key=other_key))
    good = setup.assignment(setup.bundle("det", "7.0.0"))
    extra = good.files[0].model_copy(update={"path": "extra.bin"})
    a_extra = good.model_copy(
        update={"files": [*good.files, extra], "size": good.size + extra.size}
    )
    with setup.agent() as agent:
        setup.watcher.desire(1, a_rogue)
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("6.6.6"), 20, "rogue FAILED")
        setup.watcher.desire(2, a_extra)
        wait_until(lambda: EventKind.FAILED in setup.watcher.kinds("7.0.0"), 20, "extra FAILED")
        reasons = [e.reason or "" for e in setup.watcher.events if e.kind == EventKind.FAILED]
        assert "signature rejected" in reasons[0]
        assert "signed manifest" in reasons[1] and "extra.bin" in reasons[1]
        assert agent.active == [] and agent.status == DeviceStatus.FAILED
        assert not any((agent.config.data_dir / "models").glob("*"))
