"""The errors of ``hw_profiles``.

    HwProfilesError        base class of everything this package raises
    └── ProfileError       the profile catalogue is malformed (one line naming the file
                           and the field), or no profile of a catalogue matches a host

Probing never raises (a failed probe is a note in ``HostFacts.probe_errors``), so only the
catalogue and the matching can fail. Messages are one line, safe to show to an operator.
"""

from __future__ import annotations


class HwProfilesError(Exception):
    """Base class of the errors of ``hw_profiles``."""


class ProfileError(HwProfilesError):
    """A profile file is malformed, or no profile matches a host."""
