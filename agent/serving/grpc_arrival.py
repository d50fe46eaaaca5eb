"""A time limit on a gRPC call's request message arriving (REST's ``request_timeout_s``).

grpcio's server sets none: a call whose client sent its headers but never its message
holds a worker thread for as long as the connection lives. ``ArrivalWatch`` gives each
call ``timeout_s`` from the moment its handler starts waiting for the message; a call
still waiting then is cancelled (``RpcContext.cancel``: the client sees CANCELLED, the
waiting handler wakes). One thread watches every call: the limit is the same for all,
so the calls fall due in the order they began waiting, and each check looks only at the
oldest. No grpcio import: anything with ``cancel()`` can be watched.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

logger = logging.getLogger(__name__)


class Cancellable(Protocol):
    def cancel(self) -> object: ...


class ArrivalWatch:
    """Cancels the calls still waiting for their message ``timeout_s`` after they began."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._cond = threading.Condition()
        #: key -> (deadline, call), in deadline order (the timeout is the same for all)
        self._waiting: dict[int, tuple[float, Cancellable]] = {}
        self._keys = itertools.count()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="grpc-arrival", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @contextmanager
    def waiting(self, call: Cancellable) -> Iterator[None]:
        """``call`` is cancelled if this block has not ended ``timeout_s`` from now."""
        with self._cond:
            key = next(self._keys)  # no wake-up: the watcher sleeps at most timeout_s
            self._waiting[key] = (time.monotonic() + self._timeout_s, call)
        try:
            yield
        finally:
            with self._cond:
                self._waiting.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                late = []
                for key, (deadline, call) in list(self._waiting.items()):
                    if deadline > now:
                        break  # the rest fall due later still
                    del self._waiting[key]
                    late.append(call)
                if not late:
                    oldest = next(iter(self._waiting.values()), None)
                    # none waiting: a call starting now falls due timeout_s from now
                    self._cond.wait(self._timeout_s if oldest is None else oldest[0] - now)
                    continue
            for call in late:  # outside the lock: cancelling wakes the call's handler
                logger.info(
                    "local gRPC call cancelled: no request message within %ss", self._timeout_s
                )
                call.cancel()
