"""Errors of the operator CLI, each printed as one line by ``edgectl.cli``.

EdgectlError            base; ``exit_code`` says how the CLI exits
├── UsageError          bad input on the command line: bad argument, missing file, bad key (2)
├── UnreachableError    the control plane cannot be reached (3)
├── ServerError         the control plane answered with an error (1)
├── VerificationError   a bundle signature or trust document is invalid (1)
├── RolloutFailed       a watched rollout was aborted, or completed with failed devices (1)
├── RolloutPaused       a watched rollout is paused: a gate tripped or an operator paused it (4)
├── PinNotHonoured      a device answered a pin: it cannot serve with that backend (1)
└── WatchTimeout        a watched rollout still runs after ``--timeout``, or online devices
                        have not answered a pin by then (5)

Exit codes (the one list; ``docs/edgectl.md`` and ``edgectl --help`` repeat it):

  0    success: done, valid, or the watched rollout completed on every device
  1    refused by the control plane, a signature or trust document is invalid, the
       watched rollout was aborted or completed with failed devices, or a device cannot
       honour a pin
  2    bad input: arguments, files, keys (nothing was sent)
  3    the control plane cannot be reached
  4    the watched rollout is paused (resume it with ``edgectl rollouts resume ID``)
  5    the watched rollout still runs after ``--timeout`` (it goes on server-side), or
       online devices have not answered a pin by then
  130  interrupted (Ctrl-C); a rollout being watched goes on server-side
"""

from __future__ import annotations

EXIT_CODES = """\
exit codes:
  0    success (a watched rollout completed on every device)
  1    refused by the control plane; invalid signature; rollout aborted or devices failed;
       a device cannot honour a pin
  2    bad input (nothing was sent)
  3    control plane unreachable
  4    the watched rollout is paused (edgectl rollouts resume ID)
  5    the watched rollout still runs after --timeout (it goes on server-side), or
       devices have not answered a pin by then
  130  interrupted (a watched rollout goes on server-side)
  141  stdout's reader went away (edgectl ... | head -1): stopped quietly"""


class EdgectlError(Exception):
    exit_code = 1


class UsageError(EdgectlError):
    exit_code = 2


class UnreachableError(EdgectlError):
    exit_code = 3


class ServerError(EdgectlError):
    exit_code = 1

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class VerificationError(EdgectlError):
    """A signature or trust document did not verify; the message says why."""

    exit_code = 1


class RolloutFailed(EdgectlError):
    """The watched rollout was aborted, or completed with devices that failed."""

    exit_code = 1


class RolloutPaused(EdgectlError):
    """The watched rollout is paused; it waits for ``edgectl rollouts resume``."""

    exit_code = 4


class WatchTimeout(EdgectlError):
    """The watched rollout still runs after ``--timeout``; it goes on server-side."""

    exit_code = 5


class PinNotHonoured(EdgectlError):
    """A device processed a pin and serves with another backend, or nothing (exit 1)."""

    exit_code = 1
