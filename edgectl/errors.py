"""Errors of the operator CLI, each printed as one line by ``edgectl.cli``.

EdgectlError            base; ``exit_code`` says how the CLI exits
├── UsageError          bad input on the command line: missing file, bad key (exit 2)
├── UnreachableError    the control plane cannot be reached (exit 3)
├── ServerError         the control plane answered with an error (exit 1)
└── VerificationError   a bundle signature or trust document is invalid (exit 1)

Exit codes: 0 success (or "valid"), 1 refused by the server, a deployment failed or a
signature / trust document is invalid, 2 bad input (missing file, bad key, bad
arguments), 3 control plane unreachable, 130 interrupted.
"""

from __future__ import annotations


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
