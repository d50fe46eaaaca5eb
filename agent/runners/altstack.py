"""Forget an alternate signal stack a native runtime left on the current thread.

OpenVINO's CPU plugin installs an alternate signal stack (``sigaltstack``) on the thread
that compiles a model and puts back the previous one when the compiled model is
destroyed. With several compiled models alive at once (measured selection; a hot swap),
they are not destroyed in the reverse order of their creation, so a thread can be left
with the stack of a model already freed. Python installs its signal handlers with
``SA_ONSTACK``, so the next SIGTERM would then run on freed memory and crash the agent
(seen: exit -11 on SIGTERM after a selection that measured two OpenVINO candidates).

``drop_alt_stack()`` disables the current thread's alternate stack; the OpenVINO runner
calls it after every compile and every close. Handlers then run on the thread's normal
stack, as they do without OpenVINO. Linux only; elsewhere (or if libc has no
``sigaltstack``) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

SS_DISABLE = 2


class _StackT(ctypes.Structure):
    _fields_ = [
        ("ss_sp", ctypes.c_void_p),
        ("ss_flags", ctypes.c_int),
        ("ss_size", ctypes.c_size_t),
    ]


def _sigaltstack() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):
        return None


_SIGALTSTACK = _sigaltstack()


def drop_alt_stack() -> None:
    """Disable the calling thread's alternate signal stack, if one is set."""
    if _SIGALTSTACK is None:
        return
    current = _StackT()
    if _SIGALTSTACK(None, ctypes.byref(current)) != 0 or current.ss_flags & SS_DISABLE:
        return
    off = _StackT(None, SS_DISABLE, 0)
    if _SIGALTSTACK(ctypes.byref(off), None) != 0:
        logger.debug("sigaltstack(SS_DISABLE) failed: errno %d", ctypes.get_errno())
