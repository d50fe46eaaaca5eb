"""Host probing and the device-class catalogue (a leaf: imports nothing else of ours).

Public surface:
    HostFacts, GpuFacts   frozen description of a host; ``to_dict()`` / ``from_dict()``,
                          ``fingerprint()`` (speed-relevant facts), ``runtime_versions()``
    probe_host            collect HostFacts; never raises (each probe is guarded)
    fingerprint           the fingerprint of HostFacts or of their reported dict
    CandidateSpec         one backend to measure: runtime, device, precision, hint, threads
    Profile               a device class: match conditions, priority, candidates, defaults
    load_catalogue        the packaged profiles (hw_profiles/profiles/*.toml) or a directory
    match_profile         facts -> the most specific profile (pure)
    eligible_candidates   profile + facts -> the candidates this host can run (pure)
    plain_defaults        the plain-default variants a user would write, beside a profile's
    probe_report, format_table   what ``edge-agent probe`` prints
    HwProfilesError, ProfileError

"Probe softly, choose purely": probing may fail on odd hosts and then leaves a field
empty (with a note in ``probe_errors``); matching a host to a profile and filtering the
candidates are pure functions of the facts and the catalogue. Measuring which eligible
candidate is fastest for a given model is built on top of this package, not in it.
"""

from hw_profiles.catalogue import CandidateSpec, Match, Profile, load_catalogue, parse_profile
from hw_profiles.errors import HwProfilesError, ProfileError
from hw_profiles.facts import ISA_FLAGS_OF_INTEREST, GpuFacts, HostFacts, fingerprint
from hw_profiles.matching import can_run, eligible_candidates, match_profile, matching_profiles
from hw_profiles.probe import probe_host
from hw_profiles.report import format_table, probe_report
from hw_profiles.variants import plain_defaults

__all__ = [
    "ISA_FLAGS_OF_INTEREST",
    "CandidateSpec",
    "GpuFacts",
    "HostFacts",
    "HwProfilesError",
    "Match",
    "Profile",
    "ProfileError",
    "can_run",
    "eligible_candidates",
    "fingerprint",
    "format_table",
    "load_catalogue",
    "match_profile",
    "matching_profiles",
    "parse_profile",
    "plain_defaults",
    "probe_host",
    "probe_report",
]
