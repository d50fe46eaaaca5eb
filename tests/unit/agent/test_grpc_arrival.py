"""The time limit on a gRPC call's message arriving (``agent.serving.grpc_arrival``):
the calls still waiting when it passes are cancelled, those whose message came are not."""

from __future__ import annotations

import threading
import time

from agent.serving.grpc_arrival import ArrivalWatch


class _Call:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()


def test_only_the_calls_still_waiting_are_cancelled() -> None:
    watch = ArrivalWatch(0.2)
    watch.start()
    try:
        came, late, later = _Call(), _Call(), _Call()
        with watch.waiting(came):
            pass  # its message came at once
        with watch.waiting(late):
            time.sleep(0.05)
            with watch.waiting(later):
                assert late.cancelled.wait(2)
                assert not later.cancelled.is_set()  # due 0.05 s after the first
                assert later.cancelled.wait(2)
        time.sleep(0.3)
        assert not came.cancelled.is_set()
    finally:
        watch.stop()


def test_it_watches_again_once_restarted() -> None:
    watch = ArrivalWatch(0.05)
    watch.start()
    watch.stop()
    watch.start()
    try:
        call = _Call()
        with watch.waiting(call):
            assert call.cancelled.wait(2)
    finally:
        watch.stop()
